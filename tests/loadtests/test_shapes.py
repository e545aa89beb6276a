"""Shape math: exact rates at chosen times (issue 6's singles-day curve)."""

from __future__ import annotations

import pytest

from loadtests.shapes import Diurnal, SinglesDay, Steady, make_shape, shape_from_params

SD = SinglesDay(baseline=10, read_share=0.5, read_boost=4, storm=8, peak=20, ramp_s=30,
                hold_s=120, half_life_s=600, before_s=900, after_s=1800)


@pytest.mark.parametrize(("x", "reads", "writes"), [
    (-900, 5, 5),            # trace start: baseline split by read_share
    (-600, 5, 5),            # T-10 min: reads start rising
    (-330, 22.5, 5),         # half way to read_boost·B
    (-60, 40, 5),            # T-60 s: read_boost·B, the refresh storm starts
    (-30, 60, 5),            # half way through the storm
    (0, 80, 5),              # T0: storm·B; writes start their ramp
    (15, 5 + 75 * 2 ** (-15 / 600), 102.5),  # half way up the 30 s ramp
    (30, 5 + 75 * 2 ** (-30 / 600), 200),             # P = 20·B within 30 s
    (150, 5 + 75 * 2 ** (-150 / 600), 200),           # end of the 2 min hold
    (750, 5 + 75 * 2 ** (-750 / 600), 102.5),         # one half-life into the decay
    (1350, 5 + 75 * 2 ** (-1350 / 600), 53.75),       # two half-lives
])
def test_singles_day_rates(x: float, reads: float, writes: float) -> None:
    assert SD.rates(x + 900) == (pytest.approx(reads), pytest.approx(writes))


def test_compression_divides_time_and_keeps_rates() -> None:
    fast = SinglesDay(baseline=10, read_share=0.5, half_life_s=600, compression=10)
    assert fast.duration == pytest.approx(270)
    assert fast.t0 == pytest.approx(90)
    for x in (-700, -60, -1, 0, 7.5, 30, 200, 1000):
        assert fast.rates(90 + x / 10) == pytest.approx(
            SinglesDay(baseline=10, read_share=0.5, half_life_s=600).rates(900 + x))
    assert fast.rates(-1) == (0, 0) and fast.rates(271) == (0, 0)


def test_steady_and_diurnal() -> None:
    steady = Steady(baseline=100, read_share=0.25, duration_s=60, compression=2)
    assert steady.duration == 30
    assert steady.rates(10) == (25, 75)
    assert steady.rates(31) == (0, 0)
    day = Diurnal(baseline=100, read_share=0.5, amplitude=0.8, peak_hour=21)
    assert day.rates(21 * 3600) == pytest.approx((90, 90))
    assert day.rates(9 * 3600) == pytest.approx((10, 10))
    assert day.rates(15 * 3600) == pytest.approx((50, 50))
    fast = Diurnal(baseline=100, compression=24)
    assert fast.duration == 3600
    assert fast.rates(21 * 150) == pytest.approx((90, 90))


def test_params_round_trip_and_validation() -> None:
    assert shape_from_params(SD.params()) == SD
    assert make_shape("steady", baseline=3.0).params()["name"] == "steady"
    with pytest.raises(ValueError, match="unknown shape"):
        make_shape("tsunami")
    with pytest.raises(ValueError):
        SinglesDay(read_boost=9, storm=8)
    with pytest.raises(TypeError):
        make_shape("steady", peak=3)
