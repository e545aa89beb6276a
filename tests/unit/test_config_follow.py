"""Changes from the live config that players' state cannot follow (economy.config.
follow_problems): publish refuses them with the path of each, an experiment arm may not
make them either way, and every other change passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from economy.config import follow_problems
from tests.unit.factory import raw_config, species_with
from tests.unit.test_experiments import experiment, problems, raw_with

START = 1_800_000_000


def live() -> dict[str, Any]:
    raw = raw_config()
    raw["samples"] = {"trial": {"title": "Trial", "sku": "S1", "stock": 100,
                                "opens_at": START, "closes_at": START + 86400,
                                "mode": "first_come", "buckets": 2}}
    raw["presales"] = {"early": {"title": "Gift box", "sku": "BOX-11", "price_fen": 19900,
                                 "reserve_from": START, "reserve_until": START + 3600,
                                 "event_at": START + 7200, "convert_until": START + 86400,
                                 "stock": 50}}
    raw["flashsales"] = {"midnight": {"title": "Midnight", "sku": "SKU-1", "price_fen": 100,
                                      "starts_at": START, "stock": 10}}
    raw["currencies"]["hongbao"] = {"name": "Red envelopes (fen)", "initial": 0, "max": 10**9}
    raw["rains"] = {"rain": {"title": "Rain", "currency": "hongbao", "buckets": 2, "rounds": {
        "r1": {"starts_at": START, "duration_s": 60, "pool_fen": 10000, "envelopes": 100}}}}
    raw["polls"] = {"best": {"title": "Best", "opens_at": START, "closes_at": START + 86400,
                             "buckets": 4, "options": {"a": {"label": "A"},
                                                       "b": {"label": "B"},
                                                       "c": {"label": "C"}}}}
    return raw


def changed(**edits: Any) -> dict[str, Any]:
    """The live config with ``section__id__field=value`` edits."""
    raw = live()
    for where, value in edits.items():
        section, item, field = where.split("__")
        raw[section][item][field] = value
    return raw


def test_an_unchanged_config_and_free_changes_pass() -> None:
    assert follow_problems(live(), live(), START + 10) == []
    free = changed(samples__trial__closes_at=START + 2 * 86400,
                   presales__early__price_fen=9900)
    free["species"]["squirrel"]["name"] = "Red squirrel"
    free["species"]["chipmunk"] = copy.deepcopy(free["species"]["squirrel"])
    assert follow_problems(live(), free, START + 10) == []


def test_a_species_of_the_live_version_stays() -> None:
    renamed = live()
    renamed["species"] = {"chipmunk": species_with()["squirrel"]}
    assert follow_problems(live(), renamed, START) == [{
        "path": "$.species.squirrel",
        "message": "is in the live version and pets may be of it: a species cannot be "
                   "removed or renamed (change its name field instead)"}]


@pytest.mark.parametrize("field,value", [("stock", 120), ("mode", "lottery"), ("buckets", 4)])
def test_a_campaign_keeps_its_split_once_applications_opened(field: str, value: Any) -> None:
    new = changed(**{f"samples__trial__{field}": value})
    assert follow_problems(live(), new, START - 1) == []  # not open yet: free to change
    assert follow_problems(live(), new, START) == [{
        "path": f"$.samples.trial.{field}",
        "message": f"is {live()['samples']['trial'][field]!r} in the live version and "
                   "applications opened under it: it cannot change (stock, mode and "
                   "buckets split the applications)"}]
    assert follow_problems(live(), new, None) != []  # an arm: at any time


def test_a_presale_keeps_its_deadline_once_reservations_opened() -> None:
    new = changed(presales__early__convert_until=START + 90_000)
    assert follow_problems(live(), new, START - 1) == []
    assert follow_problems(live(), new, START) == [{
        "path": "$.presales.early.convert_until",
        "message": f"is {START + 86400} in the live version and reservations opened "
                   "under it: they hold until then, so it cannot change"}]


def test_a_published_stock_changes_only_with_set_stock() -> None:
    new = changed(presales__early__stock=80)
    new["coupons"]["c10"]["stock"] = 100  # unchanged
    assert follow_problems(live(), new, START) == [{
        "path": "$", "message": "presale:early: the live version's stock is 50 and this "
                                "config says 80; a published stock changes only with "
                                "setStock (keep the live number here)"}]
    assert follow_problems(live(), new, START, stock=False) == []


def test_a_live_config_the_schema_no_longer_accepts_is_not_compared() -> None:
    old = live()
    old["species"] = {}  # min 1 species: invalid today
    assert follow_problems(old, live(), START) == []


def test_an_arm_may_not_remove_or_add_a_species() -> None:
    raw = raw_with(experiment(arms={"control": {"percent": 50}, "b": {
        "percent": 50, "overrides": {"$.species.extra": {
            "name": "Extra", "stats": {"satiety": {"max": 100, "initial": 50}}}}}}))
    assert problems(raw) == [{
        "path": "$.experiments.e1.arms.b.overrides",
        "message": "players move between the arm and the base: $.species.extra is in the "
                   "live version and pets may be of it: a species cannot be removed or "
                   "renamed (change its name field instead)"}]


def test_a_rain_keeps_its_buckets_once_a_round_started() -> None:
    new = changed(rains__rain__buckets=1)
    assert follow_problems(live(), new, START - 1) == []
    assert follow_problems(live(), new, START) == [{
        "path": "$.rains.rain.buckets",
        "message": "is 2 in the live version and a round started under it: envelopes "
                   "were dealt by it, so it cannot change"}]


def test_a_poll_keeps_its_options_and_buckets_once_open() -> None:
    new = changed(polls__best__buckets=8)
    del new["polls"]["best"]["options"]["c"]
    new["polls"]["best"]["options"]["d"] = {"label": "D"}  # adding one is fine
    assert follow_problems(live(), new, START - 1) == []
    assert follow_problems(live(), new, START) == [
        {"path": "$.polls.best.options.c", "message": "is in the live version and votes may "
                                                      "be cast for it: it cannot be removed "
                                                      "once the poll opened"},
        {"path": "$.polls.best.buckets", "message": "is 4 in the live version and votes "
                                                    "were split by it: it cannot change "
                                                    "once the poll opened"}]


def test_an_open_poll_is_not_removed_until_it_closes() -> None:
    gone = live()
    del gone["polls"]["best"]
    assert follow_problems(live(), gone, START - 1) == []
    assert follow_problems(live(), gone, START + 86400) == []
    assert follow_problems(live(), gone, START) == [{
        "path": "$.polls.best",
        "message": f"runs until {START + 86400} in the live version: it cannot be removed "
                   "before then (votes were split by its buckets: added again, it would "
                   "count them differently)"}]


@pytest.mark.parametrize(("section", "item", "end", "why"), [
    ("samples", "trial", START + 86400 + 5,
     "applications were split by its stock, mode and buckets"),
    ("rains", "rain", START + 60,
     "envelopes were dealt by its buckets: added again with others, it would deal nonces "
     "twice"),
    ("presales", "early", START + 86400, "reservations hold until its convert_until"),
])
def test_a_running_campaign_rain_or_presale_is_not_removed_until_it_ends(
        section: str, item: str, end: int, why: str) -> None:
    """Removed and added again later, its follow check would compare it with nothing:
    it could come back with the split its state was made under changed."""
    gone = live()
    del gone[section][item]
    assert follow_problems(live(), gone, START - 1) == []  # not started: free
    assert follow_problems(live(), gone, end) == []  # over: free
    assert follow_problems(live(), gone, end - 1) == [{
        "path": f"$.{section}.{item}",
        "message": f"runs until {end} in the live version: it cannot be removed before "
                   f"then ({why})"}]


@pytest.mark.parametrize(("where", "field", "value"), [
    ("flashsales__midnight", "sku", "SKU-2"),
    ("presales__early", "sku", "BOX-12"),
    ("presales__early", "deposit_sku", "DEP-1"),
])
def test_a_started_sale_keeps_the_skus_its_holds_are_paid_by(where: str, field: str,
                                                              value: str) -> None:
    new = changed(**{f"{where}__{field}": value})
    assert follow_problems(live(), new, START - 1) == []
    section, item = where.split("__")
    [problem] = follow_problems(live(), new, START)
    assert problem["path"] == f"$.{section}.{item}.{field}"
    assert "holds were made for orders of it" in problem["message"]


def test_a_started_flash_sale_is_removed_only_once_its_holds_expired() -> None:
    """Its claims hold units for orders of its sku (paid against the live config);
    removed while they may, a paid hold would find no sale and its unit go back."""
    gone = live()
    del gone["flashsales"]["midnight"]
    assert follow_problems(live(), gone, START - 1) == []
    assert follow_problems(live(), gone, START + 86400) == [{
        "path": "$.flashsales.midnight",
        "message": "runs with no end in the live version: publish an end first; it can be "
                   "removed once that has passed (claims hold units for orders of its sku "
                   "until they are paid or expire)"}]
    ended = changed(flashsales__midnight__ends_at=START + 100)
    assert follow_problems(live(), ended, START + 50) == []  # setting an end is free
    assert [p["path"] for p in follow_problems(ended, gone, START + 999)] == [
        "$.flashsales.midnight"]  # default pay_seconds 900: holds until START + 1000
    assert follow_problems(ended, gone, START + 1000) == []
