"""Experiment statistics against published values and textbook tables (no scipy)."""

from __future__ import annotations

import math

import pytest

from economy.abstats import (
    Moments,
    chi2_sf,
    horizon_two_proportions,
    mean_interval,
    sample_ratio,
    two_proportions,
    two_sided_p,
    welch,
    wilson,
    z_of,
)


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (Wilson score, no correction)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998(k: int, n: int, low: float, high: float) -> None:
    got = wilson(k, n)
    assert got is not None
    assert got.low == pytest.approx(low, abs=5e-5)
    assert got.high == pytest.approx(high, abs=5e-5)


def test_normal_quantiles_and_tails() -> None:
    assert z_of(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert two_sided_p(1.959964) == pytest.approx(0.05, abs=1e-6)
    assert two_sided_p(2.575829) == pytest.approx(0.01, abs=1e-6)


@pytest.mark.parametrize(("x", "df", "p"), [
    # critical values of the χ² table (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4)
    (3.841, 1, 0.05), (6.635, 1, 0.01), (5.991, 2, 0.05), (7.815, 3, 0.05),
    (10.828, 1, 0.001), (16.266, 3, 0.001), (18.307, 10, 0.05),
])
def test_chi2_tail_matches_the_table(x: float, df: int, p: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(p, rel=2e-3)


def test_two_proportions_z_by_hand() -> None:
    """60/100 vs 45/100: pooled p = 0.525, se0 = sqrt(.525·.475·.02) = 0.070622, z = 2.1240."""
    got = two_proportions(45, 100, 60, 100)
    assert got is not None
    assert got.z == pytest.approx(0.15 / math.sqrt(0.525 * 0.475 * 0.02), rel=1e-12)
    assert got.z == pytest.approx(2.1240, abs=1e-4)
    assert got.p == pytest.approx(0.03367, abs=1e-5)
    se = math.sqrt(0.45 * 0.55 / 100 + 0.6 * 0.4 / 100)
    assert got.diff.low == pytest.approx(0.15 - 1.959964 * se, abs=1e-6)
    assert two_proportions(1, 0, 1, 1) is None


def test_means_and_welch() -> None:
    """Arm values {2, 4, 6} vs control {1, 2, 3}: means 4 and 2, variances 4 and 1."""
    control = Moments(3, 6, 14)
    arm = Moments(3, 12, 56)
    assert (control.mean, control.variance, arm.variance) == (2, 1, 4)
    got = welch(control, arm)
    assert got is not None
    assert got.z == pytest.approx(2 / math.sqrt(5 / 3), rel=1e-12)
    ci = mean_interval(arm)
    assert ci is not None and ci.high == pytest.approx(4 + 1.959964 * math.sqrt(4 / 3), abs=1e-5)
    assert welch(Moments(1, 1, 1), arm) is None


def test_welch_without_variance_reads_a_difference_as_certain() -> None:
    """20 shoppers per arm, each spending exactly its arm's price (50 vs 40): no
    variance in either, so the difference of -10 is certain (p = 0), not "no
    difference" (p = 1); equal constant arms are no difference."""
    control, arm = Moments(20, 1000, 20 * 50 ** 2), Moments(20, 800, 20 * 40 ** 2)
    got = welch(control, arm)
    assert got is not None and got.p == 0.0 and got.z == -math.inf
    assert got.to_json() == {"diff": {"estimate": -10.0, "low": -10.0, "high": -10.0},
                             "z": None, "p": 0.0}
    same = welch(control, Moments(20, 1000, 20 * 50 ** 2))
    assert same is not None and (same.z, same.p) == (0.0, 1.0)


def test_sample_ratio_mismatch() -> None:
    """5,100 vs 4,900 for a 50/50 split: χ² = 4 (p = 0.0455), not a mismatch at 0.001;
    5,300 vs 4,700: χ² = 36, a mismatch."""
    fine = sample_ratio([5100, 4900], [0.5, 0.5])
    assert fine is not None and fine.chi2 == pytest.approx(4.0)
    assert fine.p == pytest.approx(0.0455003, abs=1e-6) and not fine.mismatch
    bad = sample_ratio([5300, 4700], [0.5, 0.5])
    assert bad is not None and bad.mismatch
    assert sample_ratio([0, 0], [0.5, 0.5]) is None


def test_horizon_matches_fleiss() -> None:
    """10 % vs 15 %, α = 0.05 two-sided, power 0.8: 686 per arm (Fleiss, no continuity
    correction; the same figure as G*Power and Evan Miller's calculator)."""
    assert horizon_two_proportions(0.10, 0.15) == 686
