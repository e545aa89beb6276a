"""Game config: the demo game uses every loop feature; loop sections cross-check references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from economy.config import game_config_json_schema, parse_game_config, timezone_problem
from economy.errors import ConfigInvalid
from economy.section import unknown_currencies, window_status
from gameserver.games import known_timezones
from tests.unit.factory import BASE, config, raw_config, species_with

EXAMPLE = Path(__file__).resolve().parents[2] / "gameserver" / "examples" / "squirrel-omg.json"


def test_demo_game_uses_every_loop_feature() -> None:
    cfg = parse_game_config(json.loads(EXAMPLE.read_text()))
    squirrel = cfg.species["squirrel"]
    assert [s.id for s in squirrel.stages] == ["kit", "youngster", "adult", "elder"]
    assert squirrel.play is not None and squirrel.clean is not None
    assert squirrel.produce is not None and squirrel.produce.cap_milli == 96_000
    assert cfg.foods["pine_cone_treat"].items == {"pine_cone": 1}
    assert cfg.checkin is not None and len(cfg.checkin.cycle) == 7
    assert cfg.checkin.makeup is not None
    assert {t.kind for t in cfg.tasks.values()} == {"browse", "follow", "share", "join_group",
                                                   "purchase"}
    assert cfg.tasks["browse_shop"].browse_s == 15
    assert cfg.offers["duplicates_for_ticket"].duplicates is not None
    assert cfg.offers["gems_for_coupon"].global_limit == 1000
    assert cfg.reminders is not None and (cfg.reminders.quiet_start,
                                          cfg.reminders.quiet_end) == (22 * 60, 8 * 60)


def test_loop_sections_are_optional() -> None:
    cfg = parse_game_config({k: v for k, v in BASE.items() if k not in ("coupons",)}
                            | {"species": species_with(stages=None, play=None, clean=None,
                                                       produce=None)})
    sq = cfg.species["squirrel"]
    assert (sq.stages, sq.play, sq.clean, sq.produce) == ((), None, None, None)
    assert (cfg.checkin, cfg.tasks, cfg.offers, cfg.reminders, cfg.coupons) == (
        None, {}, {}, None, {})


def test_defaults_are_filled() -> None:
    cfg = config(tasks={"t": {"name": "T", "kind": "share", "reward": {}}},
                 checkin={"cycle": [{}], "makeup": {"cost": {}}})
    task = cfg.tasks["t"]
    assert (task.period, task.limit, task.reward.is_empty()) == ("daily", 1, True)
    assert cfg.checkin is not None and cfg.checkin.makeup is not None
    assert (cfg.checkin.makeup.per_cycle, cfg.checkin.makeup.window_days) == (1, 7)


def problems(**overrides: Any) -> list[dict[str, str]]:
    with pytest.raises(ConfigInvalid) as e:
        parse_game_config(raw_config(**overrides))
    return e.value.problems


STAGES_BAD_ORDER = [{"id": "a", "name": "A", "xp": 10}, {"id": "a", "name": "B", "xp": 10}]


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"species": species_with(stages=STAGES_BAD_ORDER)}, [
        {"path": "$.species.squirrel.stages[1].xp",
         "message": "must be above the previous stage's"},
        {"path": "$.species.squirrel.stages[1].id", "message": "is used twice"}]),
    ({"species": species_with(stages=[{"id": "a", "name": "A", "xp": 0,
                                       "reward": {"coupon": "nope"}}])},
     [{"path": "$.species.squirrel.stages[0].reward.coupon", "message": "unknown coupon"}]),
    ({"species": species_with(play={"effects": {"luck": 1}, "price": {"gold": 1}})}, [
        {"path": "$.species.squirrel.play.effects.luck", "message": "not a stat of this species"},
        {"path": "$.species.squirrel.play.price.gold", "message": "unknown currency"}]),
    ({"species": species_with(produce={"currency": "gold", "per_hour": 1, "stat": "luck"})}, [
        {"path": "$.species.squirrel.produce.currency", "message": "unknown currency"},
        {"path": "$.species.squirrel.produce.stat", "message": "not a stat of this species"}]),
    ({"species": species_with(produce={"currency": "acorn", "per_hour": 1, "above": 100})},
     [{"path": "$.species.squirrel.produce.above", "message": "must be below the stat's max"}]),
    ({"foods": {"f": {"name": "F", "items": {"nope": 1}, "effects": {"mood": 1}}}},
     [{"path": "$.foods.f.items.nope", "message": "unknown item"}]),
    ({"checkin": {"cycle": [{"items": {"nope": 1}}],
                  "makeup": {"cost": {"currency": {"gold": 1}}}}}, [
        {"path": "$.checkin.cycle[0].items.nope", "message": "unknown item"},
        {"path": "$.checkin.makeup.cost.currency.gold", "message": "unknown currency"}]),
    ({"tasks": {"t": {"name": "T", "kind": "share", "spend_fen": 100, "reward": {}}}},
     [{"path": "$.tasks.t",
       "message": "spend_fen, min_order_fen and skus are for purchase tasks"}]),
    ({"offers": {"o": {"name": "O", "cost": {"items": {"nope": 1}},
                       "duplicates": {"items": ["ghost"], "count": 1},
                       "gives": {"coupon": "zz"}, "starts_at": 10, "ends_at": 10}}}, [
        {"path": "$.offers.o.cost.items.nope", "message": "unknown item"},
        {"path": "$.offers.o.gives.coupon", "message": "unknown coupon"},
        {"path": "$.offers.o.duplicates.items[0]", "message": "unknown item"},
        {"path": "$.offers.o.ends_at", "message": "must be after starts_at"}]),
    ({"reminders": {"hungry_stat": "luck"}},
     [{"path": "$.reminders.hungry_stat", "message": "no species has it"}]),
])
def test_cross_check_problems(overrides: dict[str, Any],
                              expected: list[dict[str, str]]) -> None:
    assert problems(**overrides) == expected


@pytest.mark.parametrize(("overrides", "path"), [
    ({"tasks": {"t": {"name": "T", "kind": "dance", "reward": {}}}}, "$.tasks.t.kind"),
    ({"reminders": {"quiet_start": "24:00"}}, "$.reminders.quiet_start"),
    ({"checkin": {"cycle": []}}, "$.checkin.cycle"),
    ({"offers": {"o": {"name": "O", "gives": {}, "period": "hourly"}}}, "$.offers.o.period"),
])
def test_shape_problems(overrides: dict[str, Any], path: str) -> None:
    assert [p["path"] for p in problems(**overrides)] == [path]


def test_an_offer_time_in_milliseconds_is_refused() -> None:
    """Every config time is a unix second before 2100 (``MAX_TIME``); an offer's window
    had no upper bound, so a millisecond figure was kept as a date in the year 57,000."""
    ms = 1_767_225_600_000
    assert problems(offers={"o": {"name": "O", "gives": {}, "starts_at": ms}}) == [
        {"path": "$.offers.o.starts_at", "message": "must be ≤ 4102444800"}]


def test_json_schema_publishes_the_loop_sections() -> None:
    schema = game_config_json_schema()
    props = schema["properties"]
    for key in ("coupons", "checkin", "tasks", "offers", "reminders"):
        assert key in props
    species = props["species"]["additionalProperties"]["properties"]
    assert {"stages", "play", "clean", "produce"} <= set(species)
    assert props["tasks"]["additionalProperties"]["properties"]["kind"]["enum"] == [
        "browse", "follow", "share", "join_group", "purchase"]


def test_validation_lists_schema_and_cross_check_problems_at_once() -> None:
    """``game validate`` stopped at a schema error; the cross-checks' problems came
    only after it was fixed."""
    raw = raw_config()
    raw["currencies"]["acorn"]["initial"] = -1  # schema: below the minimum
    raw["foods"]["snack"] = {"name": "Snack", "price": {"gold": 1},  # cross-check:
                             "effects": {"satiety": 5}, "xp": 1}  # unknown currency
    with pytest.raises(ConfigInvalid) as err:
        parse_game_config(raw)
    paths = [p["path"] for p in err.value.details["problems"]]
    assert "$.currencies.acorn.initial" in paths
    assert "$.foods.snack.price.gold" in paths


def test_unknown_currencies_names_each_missing_id_at_its_path() -> None:
    """The check polls, group buys and samples share for the currencies they name."""
    assert unknown_currencies(["acorn", "gold", "shell"], {"acorn": {}}, "$.polls.p.cost") == [
        {"path": "$.polls.p.cost.gold", "message": "unknown currency 'gold'"},
        {"path": "$.polls.p.cost.shell", "message": "unknown currency 'shell'"}]
    assert unknown_currencies([], {}, "$.x") == []


LISTED = frozenset({"Asia/Shanghai", "UTC", "Etc/GMT-8", "localtime", "posixrules", "Factory"})
"""A zone directory's names, host-dependent ones included (Debian's lists ``localtime``)."""
PICK_A_ZONE = "name the zone, e.g. Asia/Shanghai"


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "Etc/GMT-8"])
def test_real_zones_are_accepted(zone: str) -> None:
    assert parse_game_config(raw_config(timezone=zone), LISTED).timezone == zone
    assert parse_game_config(raw_config(timezone=zone), known_timezones()).timezone == zone


@pytest.mark.parametrize(("zone", "message"), [
    ("localtime", "localtime is the host's own zone, not an IANA zone: servers set up "
                  f"differently would count days differently; {PICK_A_ZONE}"),
    ("posixrules", "posixrules is the host's own zone, not an IANA zone: servers set up "
                   f"differently would count days differently; {PICK_A_ZONE}"),
    ("LocalTime", "LocalTime is the host's own zone, not an IANA zone: servers set up "
                  f"differently would count days differently; {PICK_A_ZONE}"),
    ("Factory", "Factory is tzdata's placeholder for a host whose zone was never set, "
                f"not a place; {PICK_A_ZONE}"),
    ("", "must name an IANA time zone, e.g. Asia/Shanghai"),
    ("../etc/passwd",
     "is not an IANA time zone name (letters, digits, _ + - in parts joined by /)"),
    ("Asia//Shanghai",
     "is not an IANA time zone name (letters, digits, _ + - in parts joined by /)"),
    ("Mars/Olympus", "is not a known IANA time zone"),
])
def test_zones_that_are_not_real_places_are_refused(zone: str, message: str) -> None:
    """Refused even where the zone database lists them, and whatever this host's
    database holds."""
    expected = [{"path": "$.timezone", "message": message}]
    for known in (LISTED, known_timezones()):
        with pytest.raises(ConfigInvalid) as e:
            parse_game_config(raw_config(timezone=zone), known)
        assert e.value.problems == expected


def test_zone_names_are_checked_without_a_zone_database() -> None:
    """Pure callers (an experiment arm's merged config) pass no database: the name's
    shape and the host-dependent names are still refused."""
    assert timezone_problem("Mars/Olympus", None) is None
    assert timezone_problem("localtime", None) is not None
    assert timezone_problem("../etc/passwd", None) is not None
    with pytest.raises(ConfigInvalid) as e:
        parse_game_config(raw_config(timezone="Factory"))
    assert [p["path"] for p in e.value.problems] == ["$.timezone"]


def test_a_bad_zone_is_listed_beside_the_schema_problems() -> None:
    with pytest.raises(ConfigInvalid) as e:
        parse_game_config(raw_config(timezone="localtime", name=""), LISTED)
    assert [p["path"] for p in e.value.problems] == ["$.name", "$.timezone"]


def test_a_window_opens_at_its_start_and_closes_at_its_end() -> None:
    """``[opens_at, closes_at)``: the start second is open, the end second is not."""
    assert [window_status(t, 100, 200) for t in (99, 100, 199, 200)] == [
        "upcoming", "open", "open", "ended"]
    assert window_status(200, 100, 200, after="closed") == "closed"
