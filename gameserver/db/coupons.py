"""The coupon wallet in SQL: a shopper's coupons (``listMyCoupons``) and their
redemption by the merchant (``redeemCoupon``).

A coupon is a confirmed value grant of kind ``coupon`` (:data:`gameserver.db.models.grants`).
Its wallet state follows from the row and the time:

- ``void``: the grant was voided (never acknowledged to the shopper; not listed);
- ``redeemed``: the merchant redeemed it (``redeemed_ms`` set), whatever its expiry;
- ``expired``: ``valid_days`` (stamped on the row when granted) have passed;
- ``issued``: usable.

Pending rows belong to an action still running (or settled by the reconciler); they
are not listed until confirmed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.errors import DomainError, NotFound, Refusal
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.state.keys import PlayerRef

DAY_MS = 86_400_000
STATES = ("issued", "redeemed", "expired", "void")
WALLET_MAX = 200
"""Most coupons one listMyCoupons answers (newest first): far more than a game gives."""


class CouponNotFound(NotFound):
    """No coupon with that code in this merchant's game (another merchant's is 404 too)."""

    code = "coupon_not_found"


class CouponExpired(DomainError):
    code = "coupon_expired"
    kind = Refusal.CONFLICT


class CouponAlreadyRedeemed(DomainError):
    """Redeemed before under another reference (an order id): one coupon, one use."""

    code = "coupon_already_redeemed"
    kind = Refusal.CONFLICT


class CouponVoid(DomainError):
    code = "coupon_void"
    kind = Refusal.CONFLICT


OnRedeemed = Callable[[AsyncConnection, str, dict[str, Any]], Awaitable[None]]
"""``(conn, user, entry)``: what a redemption also does in its transaction."""


@dataclass(frozen=True)
class CouponRow:
    """The columns of a grant row the wallet reads."""

    code: str
    status: str
    detail: dict[str, Any]
    created_ms: int
    redeemed_ms: int | None
    redeemed_ref: str | None


def _columns() -> list[Any]:
    g = m.grants
    return [g.c.code, g.c.status, g.c.detail, g.c.created_ms, g.c.redeemed_ms,
            g.c.redeemed_ref]


def _row(r: Any) -> CouponRow:
    return CouponRow(r[0], r[1], dict(r[2] or {}), int(r[3]),
                     None if r[4] is None else int(r[4]), r[5])


def expires_ms(row: CouponRow) -> int | None:
    """When the coupon stops being usable; None: never (no ``valid_days`` on the row)."""
    days = int(row.detail.get("valid_days") or 0)
    return row.created_ms + days * DAY_MS if days > 0 else None


def state_of(row: CouponRow, now_ms: int) -> str:
    """The wallet state of a row at ``now_ms`` (see the module docstring)."""
    if row.status == "void":
        return "void"
    if row.redeemed_ms is not None:
        return "redeemed"
    ends = expires_ms(row)
    return "expired" if ends is not None and ends <= now_ms else "issued"


def wallet_entry(row: CouponRow, now_ms: int) -> dict[str, Any]:
    """A coupon as the shopper (and the merchant) sees it; times in Unix seconds.

    A coupon of the ``coupons`` section keeps its fields at the top of the row's
    detail; a blind-box prize keeps them under ``value``."""
    d, value = row.detail, row.detail.get("value") or {}
    ends = expires_ms(row)
    return {
        "code": row.code,
        "coupon": d.get("coupon") or d.get("prize") or "",
        "name": d.get("name") or value.get("name") or "",
        "template": d.get("template") or value.get("template") or "",
        "face_value_fen": int(d.get("face_value_fen") or value.get("face_value_fen") or 0),
        "granted_at": row.created_ms // 1000,
        "expires_at": None if ends is None else ends // 1000,
        "state": state_of(row, now_ms),
        "redeemed_at": None if row.redeemed_ms is None else row.redeemed_ms // 1000,
    }


async def list_coupons(db: Database, ref: PlayerRef, now_ms: int) -> list[dict[str, Any]]:
    """The shopper's confirmed coupons, newest first (at most :data:`WALLET_MAX`)."""
    g = m.grants
    q = (select(*_columns())
         .where(g.c.merchant_id == ref.merchant, g.c.game_id == ref.game,
                g.c.user_id == ref.user, g.c.kind == "coupon", g.c.status == "confirmed")
         .order_by(g.c.id.desc()).limit(WALLET_MAX))
    async with db.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [wallet_entry(_row(r), now_ms) for r in rows]


def count_states(coupons: list[dict[str, Any]]) -> dict[str, int]:
    """``{"issued": n, "redeemed": n, "expired": n}`` of listed coupons."""
    counts = dict.fromkeys(STATES[:3], 0)
    for c in coupons:
        counts[c["state"]] = counts.get(c["state"], 0) + 1
    return counts


async def redeem_in(conn: AsyncConnection, merchant: str, game: str, code: str,
                    reference: str, now_ms: int,
                    on_redeemed: OnRedeemed | None = None) -> dict[str, Any]:
    """Mark the coupon ``code`` redeemed (in the caller's transaction); its wallet entry.
    ``on_redeemed(conn, user, entry)`` runs in the same transaction only when this call
    redeemed it (the webhook event: it commits with the redemption, exactly once).

    Idempotent: a coupon already redeemed under the same ``reference`` answers as it
    was redeemed (its first time); under another reference it is
    :class:`CouponAlreadyRedeemed`. An expired or void coupon is refused, and a code of
    another merchant or game, or a grant still pending, is :class:`CouponNotFound`.
    The UPDATE is conditional on ``redeemed_ms IS NULL``, so of two racing
    redemptions exactly one sets it."""
    g = m.grants
    where = (g.c.merchant_id == merchant, g.c.game_id == game, g.c.code == code,
             g.c.kind == "coupon")
    row = (await conn.execute(select(*_columns()).where(*where))).first()
    if row is None or row[1] == "pending":
        raise CouponNotFound("no coupon with this code in this game")
    found = _row(row)
    if found.redeemed_ms is None and state_of(found, now_ms) == "issued":
        done = await conn.execute(update(g).where(*where, g.c.status == "confirmed",
                                                  g.c.redeemed_ms.is_(None))
                                  .values(redeemed_ms=now_ms, redeemed_ref=reference))
        if done.rowcount == 1:
            entry = {**wallet_entry(_row((await conn.execute(
                select(*_columns()).where(*where))).one()), now_ms), "reference": reference}
            if on_redeemed is not None:
                user = (await conn.execute(select(g.c.user_id).where(*where))).scalar_one()
                await on_redeemed(conn, str(user), entry)
            return entry
        found = _row((await conn.execute(select(*_columns()).where(*where))).one())
    return _settled(found, reference, now_ms)


def _settled(found: CouponRow, reference: str, now_ms: int) -> dict[str, Any]:
    """A redemption of a coupon that is not usable: a replay, or a refusal saying why."""
    state = state_of(found, now_ms)
    if state == "redeemed" and (found.redeemed_ref or "") == reference:
        return {**wallet_entry(found, now_ms), "reference": reference}
    entry = wallet_entry(found, now_ms)
    if state == "redeemed":
        raise CouponAlreadyRedeemed("this coupon was already redeemed",
                                    redeemed_at=entry["redeemed_at"])
    if state == "void":
        raise CouponVoid("this coupon was withdrawn")
    raise CouponExpired("this coupon has expired", expires_at=entry["expires_at"])
