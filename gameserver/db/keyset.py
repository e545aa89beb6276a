"""Keyset pages for background passes: rows read in key order, a page after a cursor.

A pass that reads "the first ``limit`` rows" of what it must do sees the same rows
every time when it cannot finish them (their Redis node silent, say): a full page of
those hides every row behind it for as long. Read after a cursor instead, rows it
skips never hide the rest; and with at most ``pages`` pages a pass stays bounded while
the next pass goes on where a capped one stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
R = TypeVar("R")


class KeysetPages(Generic[K]):
    """Where a capped walk stopped, so that the next one goes on from there.

    ``start`` is a key below every row's (``""``, ``0``). A walk that reached the end
    (a page shorter than ``limit``) leaves the next one starting over from ``start``,
    and so does one whose caller stopped early (an exception): no row is left behind
    for good, only for a pass."""

    def __init__(self, start: K) -> None:
        self.start = start
        self.after = start
        """The key the next walk reads after."""

    async def walk(self, read: Callable[[K, int], Awaitable[Sequence[R]]],
                   key: Callable[[R], K], limit: int, pages: int) -> AsyncIterator[Sequence[R]]:
        """Pages of ``read(after, limit)`` (rows in ``key`` order whose key is greater
        than ``after``), at most ``pages`` of them, each yielded whatever the caller
        did with the previous one's rows."""
        after, self.after = self.after, self.start
        for _ in range(pages):
            rows = await read(after, limit)
            yield rows
            if len(rows) < limit:  # the end: the next walk starts over
                return
            after = key(rows[-1])
        self.after = after  # capped: the next walk goes on from here
