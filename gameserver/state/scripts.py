"""Lua scripts shipped in ``gameserver/state/lua``, the one type that runs them, and the one
helper their replies need.

A :class:`Script` knows its source and SHA and runs by ``EVALSHA`` in one of three
ways: called on a Redis client (one command), called through a
:class:`~gameserver.state.batching.ScriptBatcher` (queued with the calls of the same loop
turn, one pipeline), or as a :meth:`Script.command` a caller puts into a round trip of
its own (the persister). A Redis that forgot it (``NOSCRIPT``: restarted, failed over)
gets it again (:meth:`Script.load_command`, or ``EVAL`` on the node of the call's keys)
and the call is sent again, which is safe because a script that is not loaded did not
run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from gameserver.state.batching import ScriptBatcher

KeyT = str | bytes
ArgT = str | bytes | int | float


@cache
def load_script(name: str) -> str:
    """The source of ``gameserver/state/lua/<name>.lua``."""
    return resources.files("gameserver.state").joinpath(f"lua/{name}.lua").read_text()


@cache
def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


class Script:
    """A Lua script run by SHA; ``await script(keys=[...], args=[...])`` runs it on what
    it is bound to (a client or a batcher), :meth:`command` gives it as a command."""

    __slots__ = ("_batcher", "_redis", "sha", "source")

    def __init__(self, source: str, *, redis: Redis | None = None,
                 batcher: ScriptBatcher | None = None) -> None:
        """A call runs on ``batcher`` when given, else on ``redis``; with neither the
        script is only used as a :meth:`command`."""
        self.source = source
        self.sha = _sha(source)
        self._redis = redis
        self._batcher = batcher

    @classmethod
    def named(cls, name: str, *, redis: Redis | None = None,
              batcher: ScriptBatcher | None = None) -> Script:
        """``gameserver/state/lua/<name>.lua`` (see the constructor)."""
        return cls(load_script(name), redis=redis, batcher=batcher)

    def __call__(self, keys: Sequence[KeyT] = (), args: Sequence[ArgT] = ()) -> Awaitable[Any]:
        """An awaitable of the script's reply (an error reply is raised by the await)."""
        if self._batcher is not None:  # the action path: no coroutine, one future
            return self._batcher.submit(self, (self.sha, len(keys), *keys, *args))
        return self._run(keys, args)

    async def _run(self, keys: Sequence[KeyT], args: Sequence[ArgT]) -> Any:
        redis = self._redis
        if redis is None:
            raise TypeError("this script is bound to no client: send its command()")
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # EVAL runs it on the node of its keys and caches it there. (SCRIPT LOAD
            # goes to every master of a cluster, and fails while any one is down.)
            return await redis.eval(self.source, len(keys), *keys, *args)

    def command(self, keys: Sequence[KeyT], args: Sequence[Any]) -> tuple[Any, ...]:
        """The ``EVALSHA`` command of one call, for a round trip of the caller's own."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def load_command(self) -> tuple[Any, ...]:
        """The command that loads it into a Redis that answered ``NOSCRIPT``."""
        return ("SCRIPT", "LOAD", self.source)

    def __repr__(self) -> str:
        return f"Script(sha={self.sha[:12]})"


def reply_text(raw: bytes | str) -> str:
    """A Redis reply as text (clients here run with ``decode_responses=False``)."""
    return raw.decode() if isinstance(raw, bytes) else raw
