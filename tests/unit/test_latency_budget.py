"""LatencyBudget: the linger grows by one step per calm window, halves when a window's
p99 passes the guard, keeps still without evidence, and never passes its ceiling."""

from __future__ import annotations

import pytest

from gameserver.state.latency_budget import LatencyBudget

TARGET = 0.010  # 10 ms p99: the guard is 7 ms, a step 0.25 ms


def _window(budget: LatencyBudget, now: float, fast: int, slow: int = 0) -> float:
    """Report ``fast`` 1 ms and ``slow`` 9 ms requests, then read the linger at ``now``."""
    for _ in range(fast):
        budget.observe(0.001)
    for _ in range(slow):
        budget.observe(0.009)
    return budget.linger(now)


def test_calm_windows_grow_the_linger_one_step_each_up_to_the_ceiling() -> None:
    budget = LatencyBudget(TARGET, ceiling=0.001, window=0.25)
    assert budget.linger(0.0) == 0.0  # no evidence yet
    assert _window(budget, 0.25, fast=100) == pytest.approx(0.00025)
    assert _window(budget, 0.50, fast=100) == pytest.approx(0.00050)
    assert _window(budget, 0.75, fast=100) == pytest.approx(0.00075)
    assert _window(budget, 1.00, fast=100) == pytest.approx(0.00100)
    assert _window(budget, 1.25, fast=100) == pytest.approx(0.00100)  # the ceiling


def test_it_adjusts_once_a_window() -> None:
    budget = LatencyBudget(TARGET, ceiling=0.005, window=0.25)
    budget.linger(0.0)
    assert _window(budget, 0.25, fast=10) == pytest.approx(0.00025)
    assert _window(budget, 0.30, fast=10) == pytest.approx(0.00025)  # same window
    assert _window(budget, 0.49, fast=10) == pytest.approx(0.00025)
    assert _window(budget, 0.50, fast=10) == pytest.approx(0.00050)


def test_a_window_whose_p99_passes_the_guard_halves_the_linger() -> None:
    budget = LatencyBudget(TARGET, ceiling=0.005, window=0.25)
    budget.linger(0.0)
    for i in range(1, 9):
        _window(budget, 0.25 * i, fast=100)
    assert budget.linger_s == pytest.approx(0.002)
    # 1 slow request in 100 is the p99 itself: not over the 1 % tail, still calm.
    assert _window(budget, 2.25, fast=99, slow=1) == pytest.approx(0.00225)
    # 2 in 100 are: the linger halves, then halves again.
    assert _window(budget, 2.50, fast=98, slow=2) == pytest.approx(0.001125)
    assert _window(budget, 2.75, fast=98, slow=2) == pytest.approx(0.0005625)
    assert _window(budget, 3.00, fast=0, slow=5) == pytest.approx(0.00028125)
    assert _window(budget, 3.25, fast=0, slow=5) == pytest.approx(0.000140625)
    # At or below one step, a slow window takes it straight to no wait at all.
    assert _window(budget, 3.50, fast=0, slow=5) == 0.0
    assert _window(budget, 3.75, fast=0, slow=5) == 0.0
    assert _window(budget, 4.00, fast=10) == pytest.approx(0.00025)  # and up again


def test_a_window_without_requests_keeps_the_linger() -> None:
    budget = LatencyBudget(TARGET, ceiling=0.005, window=0.25)
    budget.linger(0.0)
    assert _window(budget, 0.25, fast=5) == pytest.approx(0.00025)
    assert _window(budget, 0.50, fast=0) == pytest.approx(0.00025)
    assert _window(budget, 10.0, fast=0) == pytest.approx(0.00025)


def test_a_request_exactly_at_the_guard_is_not_slow() -> None:
    budget = LatencyBudget(TARGET, ceiling=0.005, window=0.25, guard=0.5)
    budget.linger(0.0)
    for _ in range(10):
        budget.observe(0.005)
    assert budget.linger(0.25) == pytest.approx(0.00025)
    budget.observe(0.0051)
    assert budget.linger(0.50) == 0.0


@pytest.mark.parametrize(("target", "ceiling"), [(0.0, 0.005), (-0.01, 0.005), (0.01, -1.0)])
def test_nonsense_bounds_are_refused(target: float, ceiling: float) -> None:
    with pytest.raises(ValueError, match="target must be positive"):
        LatencyBudget(target, ceiling=ceiling)
