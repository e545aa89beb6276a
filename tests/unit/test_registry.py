"""The mechanic registry agrees with the two lists it extends, so a mechanic that is
half registered (a config part or a state slot without its registry entry, or the
reverse) fails here by name; and every slice keeps the promises the wire form needs."""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any

import pytest

from economy.config import GAME_SPEC, SECTIONS, GameConfig
from mechanics.registry import API_ROOMS, BY_NAME, MECHANICS, SHARED_KINDS
from mechanics.slices import Slice, StateSlots
from mechanics.state import SLICES, CoreSlots, PlayerState
from mechanics.view import player_view
from tests.unit.factory import T0, config


def test_every_config_section_but_the_core_has_one_registry_entry() -> None:
    registered = [m.section.name for m in MECHANICS if m.section is not None]
    assert Counter(registered) == Counter(s.name for s in SECTIONS[1:])
    assert SECTIONS[0].name == "core"


def test_every_state_slot_but_the_core_has_one_registry_entry() -> None:
    slots = [c for c in PlayerState.__mro__[1:]
             if issubclass(c, StateSlots) and c not in (StateSlots, CoreSlots)]
    registered = [m.slots for m in MECHANICS if m.slots is not None]
    assert Counter(registered) == Counter(slots)


def test_names_wire_keys_attributes_and_config_keys_are_unique() -> None:
    assert len(BY_NAME) == len(MECHANICS)
    assert len({s.key for s in SLICES}) == len(SLICES)
    assert len({s.attr for s in SLICES}) == len(SLICES)
    keys = [k for s in SECTIONS for k in s.fields]
    assert len(set(keys)) == len(keys) and list(GAME_SPEC.fields) == keys


def test_every_attribute_of_the_state_is_a_slice() -> None:
    import dataclasses
    assert {f.name for f in dataclasses.fields(PlayerState)} == {s.attr for s in SLICES}


def test_every_attribute_of_the_config_comes_from_a_section() -> None:
    import dataclasses
    cfg = config()
    built: set[str] = set()
    for section in SECTIONS:
        built |= set(section.build(cfg.raw))
    assert {f.name for f in dataclasses.fields(GameConfig)} == built


@pytest.mark.parametrize("s", [s for s in SLICES if s.attr != "created_at"],
                         ids=lambda s: s.attr)
def test_an_absent_slice_decodes_to_its_default(s: Slice) -> None:
    default = getattr(PlayerState(created_at=0), s.attr)
    assert s.decode(None) == default
    assert s.copy(default) == default


def test_view_keys_are_unique_and_follow_the_registry() -> None:
    keys = [v.key for m in MECHANICS for v in m.views]
    assert len(set(keys)) == len(keys)
    state, cfg = PlayerState(created_at=T0), config()
    view = player_view(state, cfg, T0)
    shown = [k for k in view if k not in ("wallet", "inventory", "debts", "created_at")]
    assert shown == [v.key for m in MECHANICS for v in m.views
                     if not v.omit_none or v.show(state, cfg, T0, None) is not None]
    assert "coupons" in shown  # an omit_none view with something to show (c10) is shown


@pytest.mark.parametrize("room", API_ROOMS)
def test_every_api_room_exports_its_operations(room: str) -> None:
    module = importlib.import_module(f"gameserver.api.{room}")
    assert module.OPERATIONS, room


def test_api_rooms_follow_the_naming_convention() -> None:
    assert BY_NAME["pet"].api_module == "gameserver.api.pets"
    assert BY_NAME["energy"].api_module == "gameserver.api.energy"
    assert BY_NAME["coupons"].api_module == "gameserver.api.coupons"  # the wallet
    assert BY_NAME["produce"].api_module is None
    assert len(set(API_ROOMS)) == len(API_ROOMS)


def _named_states() -> dict[str, Any]:
    """A state of every aggregate kind that names shoppers, naming u1 everywhere it can."""
    from mechanics.assist import Assist
    from mechanics.groupbuy import Group
    from mechanics.poll import PollBucket
    from mechanics.rains import PoolBucket
    from mechanics.samples import AppBucket
    from mechanics.teamaggregates import Member, Reached, Team

    return {
        "poll": PollBucket({"red": 2}, 2, 5, {"u2": 1, "u1": 1}),
        "rain": PoolBucket(2, 300, {"u1": 1, "u2": 1}),
        "sample": AppBucket({"u1": 1, "u2": 2}, {"u1": 3}, {"u1": [4, "u1 liked it"]}),
        "assist": Assist("c", "k", "u1", 3, 0, 100, ["u2", "u1"]),
        "groupbuy": Group("duo", "u1", 2, 0, 100, [("u1", 0), ("u2", 1)], "complete", 1, 0,
                          ["u1"]),
        "team": Team("s", "t", "sec", "Team u1", "u1", 0, False,
                     {"u1": Member(1, 0, 5), "u2": Member(2, 0, 3)}, 0, 2,
                     {"m1": Reached(1, ["u1", "u2"])}, []),
    }


def _swapped(value: Any, user: str, alias: str) -> Any:
    if isinstance(value, dict):
        return {_swapped(k, user, alias): _swapped(v, user, alias) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_swapped(v, user, alias) for v in value]
    return alias if value == user else value


def test_every_renaming_names_the_pseudonym_wherever_the_state_named_the_shopper() -> None:
    """``erasePlayer``'s renames: every id (a member, a key, an owner) and nothing else
    (free text such as a team's name or a review stays); the state given is not
    changed; a state not naming the shopper (or renamed already) gives None."""
    states = _named_states()
    assert set(states) == set(SHARED_KINDS)  # a kind registered without a case here fails
    for kind, state in states.items():
        shared = SHARED_KINDS[kind]
        wire = state.to_wire()
        renamed = shared.rename(state, "u1", "erased:x")
        assert state.to_wire() == wire, kind  # pure
        plain = _swapped(renamed.to_wire(), "", "")  # tuples as lists
        assert plain == _swapped(wire, "u1", "erased:x"), kind
        assert shared.from_wire(renamed.to_wire()).to_wire() == renamed.to_wire(), kind
        assert shared.rename(renamed, "u1", "erased:x") is None, kind
        assert shared.rename(state, "u9", "erased:y") is None, kind
