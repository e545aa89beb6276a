"""The process-local cache of the player states this process committed last.

An action is a load round trip and a commit round trip to Redis. When this process
committed the player's last change, it already knows what the load would return, so
the action can skip the load: the commit's version check (and the check of the ledger
entry the state was committed with) makes a stale copy a conflict, never a wrong
write, and that conflict's reply carries the current state, so a stale copy costs the
same two round trips the load would have cost. Only a correct cache:

- read your writes: an entry is put after the commit that wrote it, with its version;
- another process or host changed the player: the version no longer matches;
- Redis lost its data and the player reached the same version again with another
  history: the ledger entry (a Redis stream id, never reused) no longer matches;
- the cached copy is the encoded state (bytes), decoded per use, so nothing a rule
  does to the state it was given can reach a later action;
- the idempotency key is still checked by the commit: a used key is a reload, which
  replays.

Reads (``getPlayer``) never use it: they have no version check to catch a stale copy.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple


class Cached(NamedTuple):
    """A player as this process last committed it."""

    version: int
    entry: bytes
    """the ledger stream entry of that commit (commit.lua's ``e``)"""
    state: bytes
    """the encoded state (msgpack, as stored)"""


class StateCache:
    """The last committed states by player member, least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        """Entries kept at most; 0 turns the cache off."""
        self._entries: OrderedDict[str, Cached] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, member: str) -> Cached | None:
        """The entry of ``member``, if any (and it becomes the most recently used)."""
        entry = self._entries.get(member)
        if entry is not None:
            self._entries.move_to_end(member)
        return entry

    def put(self, member: str, entry: Cached) -> None:
        """Remember what a commit wrote; drops the least recently used beyond capacity."""
        if not self.capacity:
            return
        self._entries[member] = entry
        self._entries.move_to_end(member)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def drop(self, member: str) -> None:
        """Forget ``member`` (its copy proved stale)."""
        self._entries.pop(member, None)

    def clear(self) -> None:
        self._entries.clear()
