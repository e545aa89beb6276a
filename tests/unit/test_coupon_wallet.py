"""The coupon wallet's pure parts: what a grant row keeps (so the wallet shows the
coupon as granted), each coupon's expiry and state, and the table hash left unchanged
by the new ``valid_days`` field (past draws still verify)."""

from __future__ import annotations

from economy.rewards import Reward
from gameserver.db.coupons import DAY_MS, CouponRow, state_of, wallet_entry
from mechanics.coupons import grants_coupons as can_grant_coupons
from mechanics.grants import Effects, grant
from mechanics.state import PlayerState
from tests.unit import boxes_factory as bf
from tests.unit.factory import T0, config

PRIZE = {"name": "¥5", "kind": "coupon", "tier": "r", "weight": 10, "stock": 5,
         "fallback": "b", "template": "T-5", "face_value_fen": 500}


def test_a_coupon_grant_keeps_name_template_value_and_validity() -> None:
    cfg = config(coupons={"c10": {"name": "¥10 off", "template": "T-10", "value_fen": 1000,
                                  "stock": 100, "valid_days": 30}})
    fx = Effects()
    grant(PlayerState(created_at=T0), Reward(coupon="c10"), "checkin", cfg, fx, times=2)
    assert [(g.ref, g.kind, g.units, dict(g.detail)) for g in fx.grants] == [(
        "coupon:c10", "coupon", 2,
        {"coupon": "c10", "count": 2, "reason": "checkin", "name": "¥10 off",
         "template": "T-10", "face_value_fen": 1000, "valid_days": 30})]
    assert fx.events[-1] == {"type": "coupon_granted", "coupon": "c10", "count": 2,
                             "reason": "checkin"}  # the reply's event is as before


def test_valid_days_counts_in_the_table_hash_only_when_set() -> None:
    before = bf.series(prizes={"p": PRIZE}).table_hash
    assert bf.series(prizes={"p": {**PRIZE, "valid_days": 0}}).table_hash == before
    assert bf.series(prizes={"p": {**PRIZE, "valid_days": 7}}).table_hash != before
    assert bf.series(prizes={"p": {**PRIZE, "valid_days": 7}}).prizes[0].prize.valid_days == 7


def test_a_game_can_grant_coupons_through_either_section() -> None:
    assert can_grant_coupons(config())  # the factory has coupon c10
    assert can_grant_coupons(bf.game(bf.series_raw(prizes={"p": PRIZE})))
    assert not can_grant_coupons(bf.game())
    goods = {**PRIZE, "kind": "goods", "template": "", "sku": "S1"}
    assert not can_grant_coupons(bf.game(bf.series_raw(prizes={"p": goods})))


def _row(**over: object) -> CouponRow:
    fields: dict[str, object] = {"code": "Cabc", "status": "confirmed",
                                 "detail": {"prize": "p", "valid_days": 2,
                                            "value": {"name": "¥5", "template": "T-5",
                                                      "face_value_fen": 500}},
                                 "created_ms": 1_000_000, "redeemed_ms": None,
                                 "redeemed_ref": None}
    fields.update(over)
    return CouponRow(**fields)  # type: ignore[arg-type]


def test_states_by_time_redemption_and_void() -> None:
    row = _row()
    ends = 1_000_000 + 2 * DAY_MS
    assert state_of(row, ends - 1) == "issued"
    assert state_of(row, ends) == "expired"
    assert state_of(_row(redeemed_ms=1_000_500), ends + 1) == "redeemed"
    assert state_of(_row(status="void"), 0) == "void"
    assert state_of(_row(detail={}), 10**15) == "issued"  # no valid_days: never expires


def test_a_box_prize_entry_reads_its_value() -> None:
    assert wallet_entry(_row(), 1_000_000) == {
        "code": "Cabc", "coupon": "p", "name": "¥5", "template": "T-5", "face_value_fen": 500,
        "granted_at": 1000, "expires_at": 1000 + 2 * 86_400, "state": "issued",
        "redeemed_at": None}
