"""PlayerState.copy: a deep copy (nothing mutable shared) that round-trips exactly."""

from __future__ import annotations

import dataclasses
from typing import Any

from mechanics.boxstate import BoxState, SeriesProgress
from mechanics.loopstate import CheckinState, OrderRecord, TaskProgress
from mechanics.state import PetState, PlayerState


def rich_state() -> PlayerState:
    """A state with every field non-empty, nested containers included."""
    return PlayerState(
        created_at=1, wallet={"acorn": 5}, inventory={"cone": 2},
        pet=PetState(species="squirrel", name="N", stats={"satiety": 50_000}, at=3, xp=4,
                     adopted_at=1, stage=1, produce_milli=700),
        cooldowns={"food:x": 9}, last_seen=8,
        checkin=CheckinState(runs=[[10, 12]], first=10, made_up=[11], total=3),
        tasks={"browse": TaskProgress(period=2, count=1, spend=0, nonces=["n1"])},
        orders={"o1": OrderRecord(at=5, amount=9900, refunded=False, tasks={"t": [2, 1]},
                                  no_coupon=["c"])},
        debts={"coupon:c": 1}, exchanges={"offer": [2, 1]}, reminded=[["hungry", 7]],
        boxes=BoxState(seed="ab" * 32, nonce=3, series={
            "s": SeriesProgress(hard=1, soft=2, owned={"fig": 1}, day=4, today=1, total=3,
                                completed=False)}),
    )


def mutable_ids(obj: Any, seen: set[int] | None = None) -> set[int]:
    """ids of every list, dict and dataclass reachable from ``obj``."""
    seen = set() if seen is None else seen
    if isinstance(obj, dict):
        seen.add(id(obj))
        for k, v in obj.items():
            mutable_ids(k, seen)
            mutable_ids(v, seen)
    elif isinstance(obj, list):
        seen.add(id(obj))
        for v in obj:
            mutable_ids(v, seen)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        seen.add(id(obj))
        for f in dataclasses.fields(obj):
            mutable_ids(getattr(obj, f.name), seen)
    return seen


def test_every_field_is_exercised() -> None:
    state = rich_state()
    empty = PlayerState(created_at=0)
    for f in dataclasses.fields(PlayerState):
        assert getattr(state, f.name) != getattr(empty, f.name), f.name


def test_copy_is_equal_and_shares_nothing_mutable() -> None:
    state = rich_state()
    twin = state.copy()
    assert twin == state
    assert mutable_ids(state).isdisjoint(mutable_ids(twin))


def test_changing_the_copy_leaves_the_original() -> None:
    state = rich_state()
    twin = state.copy()
    assert twin.pet is not None and twin.checkin.runs
    twin.pet.stats["satiety"] = 0
    twin.checkin.runs[0][1] = 99
    twin.orders["o1"].tasks["t"][1] = 7
    twin.boxes.series["s"].owned["fig"] = 9
    twin.reminded[0][1] = 0
    assert state == rich_state()
