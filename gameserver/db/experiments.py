"""Experiment results per arm, computed in SQL (SQLite and PostgreSQL alike).

The cohort of an arm is its rows in ``experiment_exposures`` (one per shopper: the first
commit the arm decided). Day 0 is the exposure's calendar day in the game's time zone
(as the rule saw it: the same clock that decides daily resets).
Per arm, SQL returns counts, or count / sum / sum of squares of a per-shopper value over
the exposed shoppers (zeros included), so Python receives a few rows per arm whatever
the traffic; :mod:`economy.abstats` turns them into intervals and tests.

- **retention Dn** (n = 1, 7, 30): share of the exposed who acted (any committed action
  of their own, their side of a shared play they made included, on its gate's day:
  ``experiment_days``, on the rules' clock; a commit made for a shopper, an order's, a
  merchant's or another shopper's side of a shared play, neither exposes nor records a
  day: :func:`gameserver.services.bind`, ``SharedActions.follow``) on day 0 + n, among
  those whose day 0 + n is over;
  **w1**: acted on one of days 7..13 after day 0, among those whose day 13 is over;
- **draws**: rows in ``draws``; **spend**: currency taken by ledger rows (negative
  deltas) of the shopper's own commits (``ledger.by_shopper``: not a refund's clawback
  nor a merchant's deduction), all currencies summed; **prize cost**: face value (fen)
  of confirmed value grants (blind-box prizes and coupons of the ``coupons`` section);
  **orders** and **GMV**: ``order_events`` (paid, less refunded amounts) — each within
  the experiment's window, from the exposing commit to the experiment's end (its stop,
  or ``stops_at`` when that passed first: afterwards everyone is on the live config, so
  the figures are frozen); a refund counts with its order (at the order's payment time,
  whenever it comes), all of an order's refunds (partial ones in ``order_refunds``, a
  whole one for what they left) together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    Select,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.abstats import (
    ALPHA,
    Moments,
    mean_interval,
    sample_ratio,
    two_proportions,
    welch,
    wilson,
)
from economy.errors import DomainError
from economy.experiments import LOWER_IS_BETTER, Experiment, window_end
from gameserver.db import models as m
from gameserver.db.configs import LOOK_BACK_VERSIONS, validate_config
from gameserver.db.database import Database
from mechanics.calendar import local_day

RETENTION = {"d1_retention": (1, 1), "d7_retention": (7, 7), "d30_retention": (30, 30),
             "w1_retention": (7, 13)}
"""Retention metric → (first, last) day after day 0 that counts as a return."""
MEANS = ("draws_per_shopper", "spend_per_shopper", "prize_cost_per_shopper",
         "orders_per_shopper", "gmv_per_shopper")


@dataclass(frozen=True)
class _Q:
    """The queries of one experiment's results."""

    merchant: str
    game: str
    experiment: str
    today: int
    exposed: Any
    end_ms: int
    """The experiment's end (:func:`window_end_of`) in ms: nothing at or after it counts."""

    @classmethod
    def of(cls, merchant: str, game: str, exp: Experiment, tz: ZoneInfo, now: int,
           end: int) -> _Q:
        """``end``: when the experiment stopped assigning (:func:`window_end_of`)."""
        x = m.experiment_exposures
        exposed = select(x.c.user_id.label("u"), x.c.arm, x.c.ts_ms, x.c.day.label("d0")).where(
            x.c.merchant_id == merchant, x.c.game_id == game,
            x.c.experiment == exp.id, x.c.ts_ms < end * 1000).cte("exposed")
        return cls(merchant, game, exp.id, local_day(now, tz), exposed, end * 1000)

    def counts(self) -> Select[Any]:
        e = self.exposed
        return select(e.c.arm, func.count()).group_by(e.c.arm)

    def retention(self, first: int, last: int) -> tuple[Select[Any], Select[Any]]:
        """(mature per arm, retained per arm) for returns on days first..last."""
        e, a = self.exposed, m.experiment_days
        mature = e.c.d0 + last < self.today
        retained = select(e.c.arm, func.count(distinct(e.c.u))).join_from(
            e, a, and_(a.c.user_id == e.c.u, a.c.merchant_id == self.merchant,
                       a.c.game_id == self.game, a.c.experiment == self.experiment,
                       a.c.day >= e.c.d0 + first, a.c.day <= e.c.d0 + last)
        ).where(mature).group_by(e.c.arm)
        return select(e.c.arm, func.count()).where(mature).group_by(e.c.arm), retained

    def per_shopper(self, values: Select[Any]) -> Select[Any]:
        """Per arm: exposed shoppers, Σ value, Σ value² of each shopper's total of
        ``values`` (columns u, t in ms, v) within the window: from their exposure to the
        experiment's end (after it, everyone is on the live config: not the arm's)."""
        e, t = self.exposed, values.subquery()
        inside = and_(t.c.u == e.c.u, t.c.t >= e.c.ts_ms, t.c.t < self.end_ms)
        per = select(e.c.u, e.c.arm,
                     cast(func.coalesce(func.sum(t.c.v), 0), Float).label("v")).select_from(
            e.outerjoin(t, inside)).group_by(e.c.u, e.c.arm).subquery()
        return select(per.c.arm, func.count(), func.sum(per.c.v),
                      func.sum(per.c.v * per.c.v)).group_by(per.c.arm)

    def _mine(self, table: Any) -> tuple[Any, Any]:
        return table.c.merchant_id == self.merchant, table.c.game_id == self.game

    def values(self, metric: str) -> Select[Any]:
        """Rows (u, t, v) of a per-shopper metric."""
        if metric == "draws_per_shopper":
            d = m.draws
            return select(d.c.user_id.label("u"), d.c.ts_ms.label("t"),
                          literal(1).label("v")).where(*self._mine(d))
        if metric == "spend_per_shopper":
            led = m.ledger
            return select(led.c.user_id.label("u"), led.c.ts_ms.label("t"),
                          (-led.c.delta).label("v")).where(
                *self._mine(led), led.c.kind == "currency", led.c.delta < 0,
                led.c.by_shopper.is_(True))
        if metric == "prize_cost_per_shopper":
            g = m.grants
            # A blind-box prize keeps its face value under ``value``; a coupon of the
            # ``coupons`` section (tasks, check-ins, exchanges ...) at the detail's top.
            face = func.coalesce(g.c.detail["value"]["face_value_fen"].as_integer(),
                                 g.c.detail["face_value_fen"].as_integer(), 0)
            return select(g.c.user_id.label("u"), g.c.created_ms.label("t"),
                          face.label("v")).where(*self._mine(g), g.c.status == "confirmed",
                                                 g.c.shadow.is_(False))
        o = m.order_events
        if metric == "orders_per_shopper":
            return select(o.c.user_id.label("u"), o.c.ts_ms.label("t"),
                          literal(1).label("v")).where(*self._mine(o), o.c.kind == "paid")
        return self._net_orders()

    def _net_orders(self) -> Select[Any]:
        """GMV rows: each paid order at its payment time, less its refunds whenever they
        came. A refund belongs to its order: one of an order paid before the exposure
        is not the arm's (it would make a shopper's GMV negative), one of an order paid
        after it is, even when it comes later. An order's refunds (its partial refunds'
        ``order_refunds`` rows, a whole refund's ``order_events`` row) are summed before
        they meet it, and never net more than it."""
        paid, r, p = m.order_events.alias("paid"), m.order_events.alias("refund"), \
            m.order_refunds
        rows = union_all(
            select(r.c.user_id, r.c.order_id, r.c.amount_fen).where(
                *self._mine(r), r.c.kind == "refunded"),
            select(p.c.user_id, p.c.order_id, p.c.amount_fen).where(*self._mine(p))
        ).subquery("refund_rows")
        refunds = select(rows.c.user_id, rows.c.order_id,
                         func.sum(rows.c.amount_fen).label("fen")).group_by(
            rows.c.user_id, rows.c.order_id).subquery("refunds")
        same = and_(refunds.c.user_id == paid.c.user_id, refunds.c.order_id == paid.c.order_id)
        net = paid.c.amount_fen - func.coalesce(refunds.c.fen, 0)
        return select(paid.c.user_id.label("u"), paid.c.ts_ms.label("t"),
                      case((net > 0, net), else_=0).label("v")).select_from(
            paid.outerjoin(refunds, same)).where(*self._mine(paid), paid.c.kind == "paid")


async def _pairs(conn: Any, query: Select[Any]) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in await conn.execute(query)}


async def _moments(conn: Any, query: Select[Any]) -> dict[str, Moments]:
    return {str(r[0]): Moments(int(r[1]), float(r[2] or 0), float(r[3] or 0))
            for r in await conn.execute(query)}


async def window_end_of(conn: Any, merchant: str, game: str, exp: Experiment) -> int:
    """When ``exp`` stopped assigning shoppers (:func:`economy.experiments.window_end`
    over the last :data:`LOOK_BACK_VERSIONS` published versions): ``stopExperiment``'s
    version (or a ship's, a draft's that stopped it), or ``stops_at`` when it passed
    first. Only the experiment's fields are read out of each version's config. Its
    ``stops_at`` when no version read assigned anyone."""
    v, path = m.game_versions, m.game_versions.c.config["experiments"][exp.id]
    # times as text, made int here: a time past 2038 overflows SQL's INTEGER cast
    rows = (await conn.execute(
        select(v.c.published_at, path["status"].as_string(), path["starts_at"].as_string(),
               path["stops_at"].as_string())
        .where(v.c.merchant_id == merchant, v.c.game_id == game)
        .order_by(v.c.version.desc()).limit(LOOK_BACK_VERSIONS))).all()
    end = window_end([(int(r[0]), r[1], _int(r[2]), _int(r[3])) for r in reversed(rows)])
    return exp.stops_at if end is None else end


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


async def measure(db: Database, merchant: str, game: str, exp: Experiment, tz: ZoneInfo,
                  now: int) -> dict[str, Any]:
    """The raw per-arm figures: exposed counts, retention pairs and per-shopper moments,
    each within the experiment's window (:func:`window_end_of`)."""
    out: dict[str, Any] = {}
    async with db.connect() as conn:
        q = _Q.of(merchant, game, exp, tz, now, await window_end_of(conn, merchant, game, exp))
        out["exposed"] = await _pairs(conn, q.counts())
        for metric, (first, last) in RETENTION.items():
            mature, retained = q.retention(first, last)
            out[metric] = (await _pairs(conn, mature), await _pairs(conn, retained))
        for metric in MEANS:
            out[metric] = await _moments(conn, q.per_shopper(q.values(metric)))
    return out


def _proportion_rows(exp: Experiment, mature: dict[str, int],
                     kept: dict[str, int]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    c = exp.control
    for arm in exp.arms:
        n, k = mature.get(arm, 0), kept.get(arm, 0)
        ci = wilson(k, n)
        cmp = None if arm == c else two_proportions(kept.get(c, 0), mature.get(c, 0), k, n)
        rows[arm] = {"n": n, "retained": k, "interval": ci.to_json() if ci else None,
                     "vs_control": cmp.to_json() if cmp else None}
    return rows


def _mean_rows(exp: Experiment, moments: dict[str, Moments]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    control = moments.get(exp.control, Moments(0, 0, 0))
    for arm in exp.arms:
        mo = moments.get(arm, Moments(0, 0, 0))
        ci = mean_interval(mo)
        cmp = None if arm == exp.control else welch(control, mo)
        rows[arm] = {"n": mo.n, "total": mo.total, "interval": ci.to_json() if ci else None,
                     "vs_control": cmp.to_json() if cmp else None}
    return rows


def _verdict(exp: Experiment, metrics: dict[str, Any], reached: bool) -> dict[str, Any]:
    """The primary metric's reading: only at the horizon; before it, a labelled peek."""
    rows = metrics[exp.primary]
    arms = {}
    for arm, row in rows.items():
        cmp = row["vs_control"]
        if cmp is None:
            continue
        significant = cmp["p"] < ALPHA
        higher = cmp["diff"]["estimate"] > 0
        arms[arm] = {"p": cmp["p"], "significant": significant if reached else None,
                     "direction": ("better" if higher != (exp.primary in LOWER_IS_BETTER)
                                   else "worse") if significant and reached else None}
    if reached:
        note = (f"fixed horizon reached (every arm has ≥ {exp.sample_size} exposed): "
                f"two-sided test at α = {ALPHA}")
    else:
        note = (f"PEEK: the horizon of {exp.sample_size} exposed shoppers per arm is not "
                "reached; these p-values are not a result — do not stop or ship on them")
    return {"metric": exp.primary, "horizon_reached": reached, "arms": arms, "note": note}


async def experiment_results(db: Database, merchant: str, game: str, exp: Experiment,
                             tz: ZoneInfo, now: int) -> dict[str, Any]:
    """Per-arm results with intervals, tests against the control, the ratio check and
    the fixed-horizon verdict (``getExperimentResults``)."""
    raw = await measure(db, merchant, game, exp, tz, now)
    exposed = {arm: raw["exposed"].get(arm, 0) for arm in exp.arms}
    metrics: dict[str, Any] = {}
    for metric in RETENTION:
        metrics[metric] = _proportion_rows(exp, *raw[metric])
    for metric in MEANS:
        metrics[metric] = _mean_rows(exp, raw[metric])
    shares = exp.shares()
    srm = sample_ratio([exposed[a] for a in exp.arms], [shares[a] for a in exp.arms])
    reached = all(n >= exp.sample_size for n in exposed.values())
    return {
        "experiment": exp.id, "status": exp.status_at(now), "control": exp.control,
        "exposed": exposed, "allocation": {a.id: a.percent for a in exp.arms.values()},
        "sample_ratio": srm.to_json() if srm else None,
        "primary": _verdict(exp, metrics, reached), "guardrails": list(exp.guardrails),
        "metrics": metrics,
        "method": {"test": "fixed horizon, two-sided, α = 0.05", "sample_size": exp.sample_size,
                   "proportions": "Wilson score interval; pooled two-proportion z-test",
                   "means": "normal interval; Welch z-test",
                   "sample_ratio": "Pearson χ² against the allocation, mismatch at p < 0.001"},
    }


# ---------------------------------------------------------------- config writes


async def sync_draft_in(conn: AsyncConnection, merchant: str, game: str,
                      change: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    """Apply ``change`` to the draft too, when there is one and the result is valid."""
    g = m.games
    where = (g.c.merchant_id == merchant, g.c.game_id == game)
    draft = (await conn.execute(select(g.c.draft).where(*where))).scalar()
    if draft is None:
        return "none"
    try:
        new = change(draft)
        validate_config(new)
    except DomainError as exc:
        return f"unchanged: {exc.code}"
    await conn.execute(update(g).where(*where).values(draft=new))
    return "updated"


async def version_config_in(conn: AsyncConnection, merchant: str, game: str,
                          version: int) -> dict[str, Any]:
    v = m.game_versions
    config = (await conn.execute(select(v.c.config).where(
        v.c.merchant_id == merchant, v.c.game_id == game, v.c.version == version))).scalar()
    assert isinstance(config, dict)
    return config
