"""PlayerState: a deep copy (nothing mutable shared), and a wire form that still
reads every state an older server wrote."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from gameserver.state.store import decode_state, encode_state
from mechanics.assiststate import AssistProgress, MyAssist
from mechanics.boxstate import BoxState, SeriesProgress
from mechanics.checkinstate import CheckinState
from mechanics.energystate import EnergyState
from mechanics.flashsalestate import SaleHold
from mechanics.groupbuystate import MyGroup
from mechanics.orderstate import OrderRecord
from mechanics.state import PetState, PlayerState, first_played
from mechanics.taskstate import TaskProgress
from mechanics.teamstate import Membership


def rich_state() -> PlayerState:
    """A state with every field non-empty, nested containers included."""
    return PlayerState(
        created_at=1, wallet={"acorn": 5}, inventory={"cone": 2},
        pet=PetState(species="squirrel", name="N", stats={"satiety": 50_000}, at=3, xp=4,
                     adopted_at=1, stage=1, produce_milli=700),
        cooldowns={"food:x": 9}, last_seen=8, played_at=6,
        checkin=CheckinState(runs=[[10, 12]], first=10, made_up=[11], total=3),
        tasks={"browse": TaskProgress(period=2, count=1, spend=0, nonces=["n1"],
                                      prev=TaskProgress(period=1, count=2, nonces=["n0"]))},
        orders={"o1": OrderRecord(at=5, amount=9900, refunded=False, tasks={"t": [2, 1]},
                                  no_coupon=["c"])},
        debts={"coupon:c": 1}, exchanges={"offer": [2, 1]}, reminded=[["hungry", 7]],
        boxes=BoxState(seed="ab" * 32, nonce=3, series={
            "s": SeriesProgress(hard=1, soft=2, owned={"fig": 1}, day=4, today=1, total=3,
                                completed=False)}),
        energy=EnergyState(value=2, at=6), experiments={"e1": "b"}, experiment_day=9,
        coupons_won=3,
        sale_holds={"h1": SaleHold("f", "midnight", 10, 910, "paid", "o1", "")},
        sale_bought={"f:midnight": 1},
        assists={"c": AssistProgress(started=1, mine={"abcdefghij": MyAssist(9, 3, "")},
                                     day=4, today=1, helps=2, owners=["o1"])},
        groupbuys={"g": MyGroup("tea", "opener", "open", 9, 7, {"acorn": 1})},
        teams={"s11": Membership(team="abcdefgh", seq=2, points=5, joined=1, left_at=0,
                                 claimed=["m10"])},
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
    assert state == rich_state()


# Written by the server before the mechanic registry (commit b50831e): rich_state()
# without energy, encoded by the hand-written PlayerState.to_wire of that version.
OLD_BLOB = bytes.fromhex(
    "8da16301a17781a561636f726e05a16981a4636f6e6502a17088a27370a8737175697272656ca16ea14ea273"
    "7481a773617469657479cdc350a2617403a2787004a2616401a2736701a27072cd02bca2636481a6666f6f64"
    "3a7809a26c7308a2636b84a17291920a0ca1660aa16d910ba17403a2746b81a662726f7773659402010091a2"
    "6e31a26f6481a26f319505cd26ac0081a17492020191a163a2646281a8636f75706f6e3a6301a2657881a56f"
    "66666572920201a2726d9192a668756e67727907a2627883a27364d940616261626162616261626162616261"
    "6261626162616261626162616261626162616261626162616261626162616261626162616261626162616261"
    "6261626162a26e6303a2737281a17387a16801a17302a16f81a366696701a16404a17401a16e03a163c2")


def test_a_state_written_before_the_registry_decodes_exactly() -> None:
    old = decode_state(OLD_BLOB)
    expected = rich_state()
    expected.energy = None  # that server had no energy: the player is full
    expected.experiments, expected.experiment_day = {}, 0  # nor experiments
    expected.sale_holds = {}  # nor flash sales: no holds
    expected.sale_bought = {}  # nor units bought
    expected.assists = {}  # nor assists: none started, none given
    expected.groupbuys = {}  # nor group buy: in no group
    expected.coupons_won = 0  # nor a count of coupons won
    expected.teams = {}  # nor teams: in no team
    expected.played_at = None  # nor a first own action: played since created_at
    expected.tasks["browse"].prev = None  # nor a task's earlier period
    assert old == expected


def test_a_state_written_before_the_registry_encodes_to_the_same_map() -> None:
    """Same keys, same values (map order is not significant to any reader)."""
    again = encode_state(decode_state(OLD_BLOB))
    assert msgpack.unpackb(again, raw=False) == msgpack.unpackb(OLD_BLOB, raw=False)
    assert len(again) == len(OLD_BLOB)


def test_a_minimal_old_state_gets_every_default() -> None:
    state = decode_state(msgpack.packb({"c": 5, "w": {"acorn": 1}}))
    assert state == PlayerState(created_at=5, wallet={"acorn": 1})
    assert state.pet is None and state.energy is None and state.boxes == BoxState()


def test_a_map_without_created_at_is_not_a_state() -> None:
    try:
        decode_state(msgpack.packb({"w": {}}))
    except KeyError as exc:
        assert exc.args == ("c",)
    else:
        raise AssertionError("decoded a map without 'c'")


def test_an_unused_new_slice_is_left_off_the_wire() -> None:
    state = rich_state()
    state.energy = None
    state.assists = {}
    state.teams = {}
    state.played_at = None
    assert "en" not in state.to_wire() and "as" not in state.to_wire()
    assert "tm" not in state.to_wire() and "pa" not in state.to_wire()
    state.played_at = 0  # not played yet is not the default: it is written
    assert state.to_wire()["pa"] == 0
    state.energy = EnergyState(value=0, at=9)
    assert state.to_wire()["en"] == [0, 9]
    assert PlayerState.from_wire(state.to_wire()) == state


def test_rich_state_round_trips_through_the_wire() -> None:
    state = rich_state()
    assert decode_state(encode_state(state)) == state


def test_first_played_is_set_by_the_first_own_commit_only() -> None:
    """A player a commit made for them creates has not played (0); their first own
    commit sets the time, later ones of either kind keep it. A player their own commit
    creates played since created_at (None, left off the wire)."""
    created = PlayerState(created_at=10)
    made_for = first_played(created, None, 10, by_shopper=False)
    assert (made_for.played_at, created.played_at) == (0, None)  # on a copy
    again = first_played(made_for.copy(), made_for, 20, by_shopper=False)
    assert again.played_at == 0
    unchanged = made_for.copy()  # a rule that changed nothing returns the loaded state
    played = first_played(unchanged, unchanged, 30, by_shopper=True)
    assert (played.played_at, unchanged.played_at) == (30, 0)  # the loaded one untouched
    assert played == dataclasses.replace(unchanged, played_at=30)
    assert first_played(played.copy(), played, 40, by_shopper=True).played_at == 30
    assert first_played(played.copy(), played, 50, by_shopper=False).played_at == 30
    own = first_played(PlayerState(created_at=10), None, 10, by_shopper=True)
    assert own.played_at is None and "pa" not in own.to_wire()
