"""The logical shard count is part of every key: recorded at the first start, and a
start with another count is refused (it would strand the data under other tags)."""

from __future__ import annotations

import bisect
from typing import Any

import pytest
from redis.crc import key_slot

from gameserver.app import create_app
from gameserver.appkeys import SETTINGS
from gameserver.db.database import Database
from gameserver.ops.settings import Settings
from gameserver.ops.shardcount import ShardCountMismatch, check_shard_count, recorded_shards
from gameserver.state.keys import CLUSTER_SHARDS, Keys


async def test_first_start_records_the_count_and_another_is_refused(
        aiohttp_client: Any, settings: Settings, db: Database) -> None:
    assert await recorded_shards(db) is None
    await aiohttp_client(create_app(settings))
    assert await db.get_meta("shards") == str(settings.shards) == "4"
    with pytest.raises(ShardCountMismatch, match="split into 4 logical shards, but "
                                                 "PETBOX_SHARDS is 8: set PETBOX_SHARDS=4"):
        await aiohttp_client(create_app(settings.with_overrides(shards=8)))
    await aiohttp_client(create_app(settings))  # the same count starts
    # PETBOX_SHARDS unset (a new default): the data's own count is used.
    client = await aiohttp_client(create_app(settings.with_overrides(
        shards=CLUSTER_SHARDS, shards_explicit=False)))
    assert client.app[SETTINGS].shards == 4


async def test_data_older_than_the_record_is_known_by_its_epochs(db: Database) -> None:
    for shard in range(16):  # what a 16-shard persister wrote before the record existed
        await db.set_meta(f"epoch:{shard}", f"e{shard}")
    assert await recorded_shards(db) == 16
    with pytest.raises(ShardCountMismatch, match="split into 16 logical shards"):
        await check_shard_count(db, CLUSTER_SHARDS)
    assert await check_shard_count(db, CLUSTER_SHARDS, explicit=False) == 16
    assert await db.get_meta("shards") == "16"
    assert await check_shard_count(db, 16) == 16


@pytest.mark.parametrize(("masters", "low", "high"), [(3, 341, 342), (10, 102, 103)])
def test_the_cluster_count_spreads_over_a_cluster(masters: int, low: int, high: int) -> None:
    """Masters with even slot ranges (as ``redis-cli --cluster create`` makes them)."""
    bounds = [16384 * i // masters for i in range(masters + 1)]
    counts = [0] * masters
    for shard in range(CLUSTER_SHARDS):
        slot = key_slot(Keys().tag(shard).split("{")[1].split("}")[0].encode())
        counts[bisect.bisect_right(bounds, slot) - 1] += 1
    assert (min(counts), max(counts)) == (low, high)
