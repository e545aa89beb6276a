"""One Lua wrapper (gameserver.state.scripts.Script) against a real redis-server: the same
script runs on a client, through a batcher, or as a command of a round trip, and each
way loads it again after Redis forgot it (SCRIPT FLUSH, as after a restart)."""

from __future__ import annotations

import hashlib

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from gameserver.state.batching import ScriptBatcher
from gameserver.state.scripts import Script, load_script

# Appends ARGV[1] to a list and answers its length; refuses 'bad' before writing.
APPEND = """
if ARGV[1] == 'bad' then return redis.error_reply('refused ' .. KEYS[1]) end
return redis.call('RPUSH', KEYS[1], ARGV[1])
"""


def test_a_script_knows_its_source_and_sha() -> None:
    script = Script.named("commit")
    assert script.source == load_script("commit")
    assert script.sha == hashlib.sha1(script.source.encode()).hexdigest()
    assert script.command(["k1", "k2"], ["a", 1]) == ("EVALSHA", script.sha, 2, "k1", "k2",
                                                       "a", 1)
    assert script.load_command() == ("SCRIPT", "LOAD", script.source)


async def test_on_a_client_it_is_loaded_again_after_redis_forgot_it(
        redis: aioredis.Redis) -> None:
    script = Script(APPEND, redis=redis)
    assert await script(keys=["l"], args=["a"]) == 1
    await redis.script_flush()
    assert await script(keys=["l"], args=["b"]) == 2
    assert await redis.lrange("l", 0, -1) == [b"a", b"b"]  # each call ran once
    with pytest.raises(ResponseError, match="refused l"):
        await script(keys=["l"], args=["bad"])


async def test_through_a_batcher_it_is_loaded_again_after_redis_forgot_it(
        redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = Script(APPEND, batcher=batcher)
    assert await script(keys=["l"], args=["a"]) == 1
    await redis.script_flush()
    assert await script(keys=["l"], args=["b"]) == 2
    assert (batcher.calls, await redis.llen("l")) == (2, 2)
    await batcher.aclose()


async def test_as_a_command_it_names_its_sha_and_its_load(redis: aioredis.Redis) -> None:
    script = Script(APPEND)
    await redis.script_flush()  # other tests of the session loaded it
    with pytest.raises(NoScriptError):
        await redis.execute_command(*script.command(["l"], ["a"]))
    assert (await redis.execute_command(*script.load_command())).decode() == script.sha
    assert await redis.execute_command(*script.command(["l"], ["a"])) == 1
    with pytest.raises(TypeError, match="bound to no client"):
        await script(keys=["l"], args=["b"])
