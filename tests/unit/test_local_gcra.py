"""The in-process GCRA: the same answers as gcra.lua, on an injected clock."""

from __future__ import annotations

from gameserver.http.ratelimit import Limit, LocalGCRA
from gameserver.http.rates import RateLimit


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_rate() -> None:
    clock = Clock()
    gcra = LocalGCRA(clock=clock)
    lim = [Limit("k", RateLimit(2, 3), "player")]  # 2/s, burst 3
    assert [gcra.check(lim) for _ in range(4)] == [(0, 0), (0, 0), (0, 0), (1, 500)]
    clock.t += 0.499
    assert gcra.check(lim) == (1, 1)
    clock.t += 0.001
    assert gcra.check(lim) == (0, 0)


def test_all_or_nothing() -> None:
    clock = Clock()
    gcra = LocalGCRA(clock=clock)
    tight = Limit("draw", RateLimit(1, 1), "draw")
    loose = Limit("player", RateLimit(100, 100), "player")
    assert gcra.check([loose, tight]) == (0, 0)
    assert gcra.check([loose, tight]) == (2, 1000)
    # the refusal spent nothing: the loose budget still has 99 left
    assert [gcra.check([loose]) for _ in range(99)] == [(0, 0)] * 99
    assert gcra.check([loose])[0] == 1


def test_table_is_bounded() -> None:
    gcra = LocalGCRA(max_keys=10, clock=Clock())
    for i in range(50):
        assert gcra.check([Limit(f"k{i}", RateLimit(1, 1), "ip")]) == (0, 0)
    assert len(gcra._tat) == 10


def test_peek_spends_nothing() -> None:
    """A peek answers as a check would, and leaves the budget as it was."""
    clock = Clock()
    gcra = LocalGCRA(clock=clock)
    lim = [Limit("k", RateLimit(1, 2), "merchant_auth")]
    assert [gcra.check(lim, peek=True) for _ in range(5)] == [(0, 0)] * 5
    assert [gcra.check(lim) for _ in range(3)] == [(0, 0), (0, 0), (1, 1000)]
    assert gcra.check(lim, peek=True) == (1, 1000)
