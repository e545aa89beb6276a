"""The generator: deterministic from a seed, follows its shape, honours the model's options."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from loadtests.generate import Generator, arrivals, generate_trace
from loadtests.model import Behaviour, GameProfile, PlayerModel
from loadtests.ops import OPERATIONS, SERVED_NOW
from loadtests.shapes import SinglesDay, Steady
from loadtests.trace import read_header, read_trace

ROOT = Path(__file__).resolve().parents[2]
PROFILE = GameProfile.from_config("squirrel-omg",
                                  json.loads((ROOT / "examples/squirrel-omg.json").read_text()))
SD = SinglesDay(baseline=20, compression=10)


def make(seed: int = 1, shape: SinglesDay | Steady = SD, ops: frozenset[str] | None = None,
         profile: GameProfile = PROFILE, players: int = 2000) -> Generator:
    return Generator(shape, PlayerModel(profile, Behaviour(ops=ops), shape.compression),
                     players=players, seed=seed)


def test_same_seed_same_trace_other_seed_other_trace(tmp_path: Path) -> None:
    small = SinglesDay(baseline=5, compression=10)
    for name, seed in (("a", 42), ("b", 42), ("c", 43)):
        generate_trace(tmp_path / f"{name}.pbt", make(seed=seed, shape=small))
    a, b, c = (list(read_trace([tmp_path / f"{n}.pbt"])[1]) for n in "abc")
    assert a == b
    assert a != c
    assert len(a) > 5_000
    ha, hb = read_header(tmp_path / "a.pbt"), read_header(tmp_path / "b.pbt")
    assert (ha.shape, ha.meta, ha.defaults) == (hb.shape, hb.meta, hb.defaults)
    assert ha.shape["name"] == "singles-day" and ha.meta["seed"] == 42


def test_records_are_ordered_and_inside_the_trace() -> None:
    records = list(make().records())
    times = [r.t_ms for r in records]
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] < SD.duration * 1000
    assert {r.op for r in records} <= set(OPERATIONS)


@pytest.mark.parametrize("rate", [50.0, 1000.0])
def test_arrivals_match_the_integrated_rate(rate: float) -> None:
    times = list(arrivals(lambda t: rate * t / 10, 10.0, random.Random(3)))
    expected = rate * 10 / 2  # ∫ rate·t/10 dt over 0..10
    assert abs(len(times) - expected) < 4 * expected ** 0.5
    assert times == sorted(times)
    assert sum(1 for t in times if t > 5) > 2.5 * sum(1 for t in times if t < 5)


def test_the_trace_follows_the_singles_day_shape() -> None:
    records = list(make().records())
    t0 = SD.t0 * 1000

    def rate(lo_s: float, hi_s: float, writes: bool) -> float:
        n = sum(1 for r in records if t0 + lo_s * 1000 <= r.t_ms < t0 + hi_s * 1000
                and OPERATIONS[r.op].is_write == writes)
        return n / (hi_s - lo_s)

    base_w, base_r = rate(-90, -65, True), rate(-90, -65, False)
    assert base_w == pytest.approx(10, rel=0.5)   # (1 - read_share)·B
    assert base_r == pytest.approx(10, rel=0.5)
    assert rate(-6, 0, False) > 8 * base_r        # refresh storm: reads 4..8·B
    assert rate(5, 15, True) > 25 * base_w        # hold: writes P = 20·B = 400/s
    assert rate(5, 15, True) == pytest.approx(400, rel=0.25)
    assert rate(150, 175, True) < rate(5, 15, True) / 2  # decaying


def test_ops_filter_and_adopt_before_feed() -> None:
    basic = frozenset(("createSession", "getPlayer", "adoptPet", "feedPet"))
    assert basic <= set(SERVED_NOW)
    records = list(make(ops=basic, shape=Steady(baseline=200, duration_s=20)).records())
    assert {r.op for r in records} == basic
    adopted: set[str] = set()
    early_feeds = 0
    for r in records:
        if r.op == "adoptPet":
            adopted.add(r.player)
        elif r.op == "feedPet" and r.player not in adopted:
            early_feeds += 1
    assert early_feeds == 0


def test_hot_prize_share_of_draws() -> None:
    profile = GameProfile(series=("a", "b", "c"), hot_series="a", hot_prize="coupon")
    shape = Steady(baseline=400, duration_s=300, compression=10)
    records = list(make(profile=profile, shape=shape).records())
    series = Counter(r.params["series"] for r in records if r.op == "drawBox" and r.params)
    share = series["a"] / sum(series.values())
    assert sum(series.values()) > 1000
    assert share == pytest.approx(0.4, abs=0.05)


def test_hot_prize_comes_from_the_config() -> None:
    config = json.loads((ROOT / "examples/squirrel-omg.json").read_text())
    prize = next(p for s in config["boxes"]["series"].values() for p in s.get("prizes", {}))
    profile = GameProfile.from_config("g", config, hot_prize=prize)
    assert profile.hot_series in config["boxes"]["series"]
    with pytest.raises(ValueError, match="limited prize"):
        GameProfile.from_config("g", config, hot_prize="no-such-prize")
