"""Statistics of experiment results: intervals, fixed-horizon tests, sample-ratio mismatch.

Pure and scipy-free (``statistics.NormalDist`` and a regularized incomplete gamma), so
the server computes them from the handful of sums SQL returns per arm. Methods:

- a proportion (retention): Wilson score interval (Wilson 1927; Newcombe 1998, method 3);
- difference of two proportions: Wald interval with unpooled variance, and the two-sided
  pooled two-proportion z-test;
- a mean per shopper (draws, spend, prize cost, orders, GMV): normal interval from the
  sample variance; difference of two means: Welch's z (large samples: the horizon is
  hundreds of shoppers per arm, where t and z agree to the third decimal);
- sample-ratio mismatch: Pearson's χ² goodness of fit of exposed counts against the
  allocation, flagged at p < 0.001 (Kohavi, Tang & Xu 2020, ch. 21);
- the horizon: the per-arm sample size of a two-sided two-proportion test
  (Fleiss, Levin & Paik 2003, eq. 4.14 without continuity correction).

The test is a **fixed-horizon** test: read it once, when every arm has reached the
experiment's ``sample_size``; a p-value read earlier is labelled as a peek.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

ALPHA = 0.05
SRM_ALPHA = 0.001
_N = NormalDist()


def z_of(confidence: float) -> float:
    """The two-sided critical value of ``confidence`` (0.95 → 1.95996…)."""
    return _N.inv_cdf(0.5 + confidence / 2)


def two_sided_p(z: float) -> float:
    """P(|Z| ≥ |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"estimate": round(self.estimate, 6), "low": round(self.low, 6),
                "high": round(self.high, 6)}


def wilson(k: int, n: int, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval of ``k`` successes in ``n`` (None when n = 0)."""
    if n <= 0:
        return None
    z = z_of(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Comparison:
    """An arm against the control: the difference with its interval, z and p."""

    diff: Interval
    z: float
    p: float

    def to_json(self) -> dict[str, object]:
        """``z`` is null when it is infinite (no variance in either group, yet a
        difference: JSON has no infinity)."""
        z = round(self.z, 4) if math.isfinite(self.z) else None
        return {"diff": self.diff.to_json(), "z": z, "p": round(self.p, 6)}


def two_proportions(k1: int, n1: int, k2: int, n2: int,
                    confidence: float = 0.95) -> Comparison | None:
    """Arm 2 minus arm 1 (the control): Wald interval (unpooled), pooled z-test."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    z_c = z_of(confidence)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (k1 + k2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p2 - p1) / se0 if se0 > 0 else 0.0
    d = p2 - p1
    return Comparison(Interval(d, d - z_c * se, d + z_c * se), z, two_sided_p(z) if se0 else 1.0)


@dataclass(frozen=True)
class Moments:
    """A metric per shopper summed in SQL: count, sum and sum of squares."""

    n: int
    total: float
    squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n − 1 in the denominator)."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def mean_interval(m: Moments, confidence: float = 0.95) -> Interval | None:
    """Normal interval of the mean (None without shoppers)."""
    if m.n <= 0:
        return None
    half = z_of(confidence) * math.sqrt(m.variance / m.n)
    return Interval(m.mean, m.mean - half, m.mean + half)


def welch(control: Moments, arm: Moments, confidence: float = 0.95) -> Comparison | None:
    """Arm minus control: Welch's unequal-variance statistic, read against the normal."""
    if control.n < 2 or arm.n < 2:
        return None
    se = math.sqrt(control.variance / control.n + arm.variance / arm.n)
    d = arm.mean - control.mean
    half = z_of(confidence) * se
    if se == 0:  # every shopper of each group has the group's mean: d is exact
        return (Comparison(Interval(d, d, d), 0.0, 1.0) if d == 0 else
                Comparison(Interval(d, d, d), math.copysign(math.inf, d), 0.0))
    z = d / se
    return Comparison(Interval(d, d - half, d + half), z, two_sided_p(z))


# ---------------------------------------------------------------- sample-ratio mismatch


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma Q(a, x) (series below a+1, else a
    continued fraction; Numerical Recipes §6.2)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - gln) * h


def chi2_sf(x: float, df: int) -> float:
    """P(χ²_df ≥ x)."""
    return _gamma_q(df / 2, x / 2)


@dataclass(frozen=True)
class RatioCheck:
    chi2: float
    df: int
    p: float

    @property
    def mismatch(self) -> bool:
        return self.p < SRM_ALPHA

    def to_json(self) -> dict[str, object]:
        return {"chi2": round(self.chi2, 4), "df": self.df, "p": round(self.p, 6),
                "mismatch": self.mismatch, "threshold": SRM_ALPHA}


def sample_ratio(observed: list[int], shares: list[float]) -> RatioCheck | None:
    """Pearson's χ² of exposed counts against the allocation's shares (None: no one yet)."""
    n = sum(observed)
    if n == 0 or len(observed) < 2:
        return None
    chi2 = sum((o - n * s) ** 2 / (n * s) for o, s in zip(observed, shares, strict=True) if s > 0)
    df = len(observed) - 1
    return RatioCheck(chi2, df, chi2_sf(chi2, df))


def horizon_two_proportions(p1: float, p2: float, alpha: float = ALPHA,
                            power: float = 0.8) -> int:
    """Shoppers per arm for a two-sided two-proportion z-test to detect p1 vs p2."""
    za, zb = _N.inv_cdf(1 - alpha / 2), _N.inv_cdf(power)
    pbar = (p1 + p2) / 2
    root = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / (p1 - p2) ** 2)
