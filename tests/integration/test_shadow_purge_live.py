"""``petbox shadow purge`` with the embedded defaults while a server is running: it must
purge the running server's redis-server, not start a second one on the same AOF."""

from __future__ import annotations

from pathlib import Path

import redis

from gameserver.ops.embedded import RedisProcess, running_embedded_redis
from gameserver.ops.shadow import purge_embedded


def test_purge_reaches_the_running_embedded_redis(tmp_path: Path) -> None:
    """A running redis-server replaces its command line with its title (``redis-server
    127.0.0.1:PORT``), so the purge did not recognise it by ``--dir``: it started a
    second redis-server on the same AOF, purged that copy ("purged N shadow keys") and
    rewrote the AOF under the running one, whose shadow keys all stayed. Now the running
    one is found (working directory and title) and purged; real keys stay."""
    live = RedisProcess(tmp_path / "redis")
    live.start()
    try:
        client = redis.Redis(port=live.port)
        client.set("pb:{s0}:p:shop:game:u1", "real")
        client.set("pbs:{s0}:p:shop:game:lt-u1", "shadow")
        client.set("pbs:{s1}:p:shop:game:lt-u2", "shadow")
        assert running_embedded_redis(tmp_path / "redis") == live.url
        assert purge_embedded(tmp_path, None) == (2, 0)
        assert sorted(client.keys("*")) == [b"pb:{s0}:p:shop:game:u1"]
        assert client.get("pb:{s0}:p:shop:game:u1") == b"real"
        client.close()
    finally:
        live.stop()
    # the AOF on disk is the running server's: the real key survives a restart
    with RedisProcess(tmp_path / "redis") as again:
        after = redis.Redis(port=again.port)
        assert sorted(after.keys("*")) == [b"pb:{s0}:p:shop:game:u1"]
        after.close()
