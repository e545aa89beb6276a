"""The mechanic registry agrees with the two lists it extends, so a mechanic that is
half registered (a config part or a state slot without its registry entry, or the
reverse) fails here by name; and every slice keeps the promises the wire form needs."""

from __future__ import annotations

import importlib
from collections import Counter

import pytest

from economy.config import GAME_SPEC, SECTIONS, GameConfig
from mechanics.registry import API_ROOMS, BY_NAME, MECHANICS
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
