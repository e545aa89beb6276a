"""bench/scale_bench.py seeds players straight into Redis: the store must find them there
(the hot path, no read-through) and act on them as on players made through HTTP."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
import redis.asyncio as aioredis

from gameserver.clock import SystemClock
from gameserver.games import parse_config
from gameserver.http.auth import TokenSigner
from gameserver.ops.metrics import Metrics
from gameserver.state.keys import Keys, PlayerRef, shard_of
from gameserver.state.store import Store
from mechanics import pet

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _scale_bench() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("scale_bench", BENCH / "scale_bench.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["scale_bench"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


class NoSQL:
    """Any SQL read would mean the player was not found in Redis."""

    async def fetch_player(self, ref: PlayerRef) -> None:
        raise AssertionError("read through SQL")

    async def fetch_archived(self, ref: PlayerRef, since_ms: int) -> None:
        raise AssertionError("read through SQL")

    async def fetch_response(self, commit_id: str) -> None:
        raise AssertionError("read through SQL")


async def test_seeded_players_are_found_in_redis_and_fed(redis_url: str) -> None:
    bench = _scale_bench()
    config = parse_config(json.loads((BENCH / "bench_game.json").read_text()))
    tz = ZoneInfo(config.timezone)
    sync = redis.Redis.from_url(redis_url)
    bench.seed_players(sync, config, tz, "m1", "bench", 0, 5, batch=2)
    sync.close()
    token = bench.mint_tokens("s" * 32, "m1", 3, 4)[0]
    assert TokenSigner("s" * 32, 60).verify(token, 0).user == bench.user_of(3)

    client = aioredis.from_url(redis_url)
    store = Store(client, Keys(), NoSQL(), Metrics(), SystemClock())  # type: ignore[arg-type]
    user = bench.user_of(3)
    ref = PlayerRef("m1", "bench", user, shard_of("m1", user, bench.SHARDS))
    loaded = await store.read(ref)
    assert loaded.in_redis and loaded.version == 1
    assert loaded.state is not None and loaded.state.pet is not None
    assert loaded.state.pet.name == "cat 3"
    assert await client.zscore(Keys().active(ref.shard), ref.member) is not None

    def feed(state: Any, now: int) -> Any:
        return pet.feed(state, pet.FeedPet("kibble"), now, None, config, tz=tz)

    reply = await store.run(ref, "k1", "h1", feed)
    assert reply.status == 200 and not reply.replayed
    assert int(await client.hget(Keys().player(ref), "v")) == 2
    await client.aclose()
