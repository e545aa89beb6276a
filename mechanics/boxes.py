"""Blind-box rules: draw 1 or 10, rotate the server seed, and the player's box state.

A draw is pure: the server passes fresh random bytes (``BoxContext.fresh_seed``,
used only when the player has no seed yet), the stock left of each limited prize
and the game's timezone; the rule never generates randomness except through
HMAC-SHA256 of the committed seed (:mod:`economy.fairness`).

Stock protocol (value tier of DESIGN.md): the outcome holds ``prize:<id>`` units
(``reservations``) and carries one :class:`~mechanics.outcome.ValueGrant` per prize
won; each draw is a :class:`~mechanics.outcome.Record` for the ``draws`` table, each
revealed seed one for ``revealed_seeds``. The server reserves each counter
atomically; if a reservation fails it re-runs :func:`draw` on the *same* loaded
state with ``stock_left`` set to what is really left. The draw is deterministic,
so every draw before the first one that hit the missing stock comes out the same
and that one falls back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from economy.boxes import AGE_BANDS, Series
from economy.config import GameConfig
from economy.errors import (
    AgeRestricted,
    DrawLimit,
    GuardianConsentRequired,
    InvalidInput,
    SeriesClosed,
    TotalDrawLimit,
    known_item,
)
from economy.fairness import (
    check_client_seed,
    check_server_seed,
    draw_entry,
    out_of_stock,
)
from economy.rewards import Reward
from economy.wallet import LedgerEntry, apply_currency, apply_items
from mechanics.boxstate import BoxState, SeriesProgress
from mechanics.calendar import local_day, next_day_start
from mechanics.grants import Effects, grant
from mechanics.outcome import LegacyRecord, Outcome, Record, StockHold, ValueGrant
from mechanics.pet import new_player
from mechanics.state import PlayerState

COUNTS = (1, 10)


@dataclass(frozen=True)
class DrawBox:
    series: str
    count: int = 1
    client_seed: str | None = None


@dataclass(frozen=True)
class RotateSeed:
    """Reveal the current server seed and commit to ``BoxContext.fresh_seed``."""


@dataclass(frozen=True)
class BoxContext:
    """What the server knows that the rule may not find out itself."""

    fresh_seed: str
    """64 hex chars from a CSPRNG; committed only if the player has no seed (or rotates)"""
    stock_left: Mapping[str, int]
    """limited prize id → stock left now; a prize not listed counts as out"""
    tz: tzinfo
    """the game's timezone (daily caps)"""
    age_band: str | None = None
    """the session's age band: under_8, 8_17, 18_plus, or None when unknown"""
    guardian_consent: bool = False
    version: int | None = None
    """the published game version the draw is made under (stamped on each record)"""
    arm: str | None = None
    """``<experiment>/<arm>`` when an experiment arm's config decides the draw (stamped on
    each record, so the draw verifies against that arm's table)"""


def _series(config: GameConfig, sid: str) -> Series:
    return known_item(config.boxes.series, sid, "series")


def check_age(gate: Mapping[str, str], age_band: str | None, guardian_consent: bool) -> None:
    """Raise unless a session of ``age_band`` may draw under ``gate``."""
    if age_band is not None and age_band not in AGE_BANDS:
        raise InvalidInput(f"age band must be one of {', '.join(AGE_BANDS)}", field="age_band")
    band = age_band or "unknown"
    policy = gate[band]
    if policy == "deny":
        raise AgeRestricted(band)
    if policy == "guardian" and not guardian_consent:
        raise GuardianConsentRequired(band)


def _check_window(series: Series, now: int) -> None:
    if now < series.opens_at or (series.closes_at and now >= series.closes_at):
        raise SeriesClosed(series.id, series.opens_at, series.closes_at, now)


def _check_caps(series: Series, prog: SeriesProgress, count: int, now: int,
                tz: tzinfo) -> None:
    # the total cap first: when both are reached, waiting for tomorrow does not help
    if series.total_cap and prog.total + count > series.total_cap:
        raise TotalDrawLimit(series.id, "total", series.total_cap, prog.total, count)
    if series.daily_cap and prog.today + count > series.daily_cap:
        # the cap lifts at the game's next local midnight: say when (Retry-After), or a
        # client honouring the default 1 s would retry in vain until then
        raise DrawLimit(series.id, "daily", series.daily_cap, prog.today, count,
                        resets_at=next_day_start(now, tz), now=now)


def _pay(new: PlayerState, series: Series, count: int, config: GameConfig) -> list[LedgerEntry]:
    price = series.price
    reason = f"box:{series.id}"
    if price.kind == "currency":
        limits = {cid: c.max for cid, c in config.currencies.items()}
        new.wallet, ledger = apply_currency(new.wallet, {price.unit: -price.amount * count},
                                            reason, limits)
    else:
        limits = {iid: i.max for iid, i in config.items.items()}
        new.inventory, ledger = apply_items(new.inventory, {price.unit: -price.amount * count},
                                            reason, limits)
    return ledger


@dataclass
class _Batch:
    """What a multi-draw accumulates before it is applied in one go."""

    records: list[dict[str, Any]] = field(default_factory=list)
    items: Counter[str] = field(default_factory=Counter)
    prizes: Counter[str] = field(default_factory=Counter)
    grants: list[ValueGrant] = field(default_factory=list)


def _blocked(series: Series, prog: SeriesProgress, inventory: Mapping[str, int],
             pending: Counter[str], config: GameConfig) -> frozenset[int]:
    """Entries the player may not get: max copies reached, or the inventory item full."""
    out: set[int] = set()
    for i, e in enumerate(series.entries):
        maxed = bool(e.max_copies) and prog.owned.get(e.id, 0) >= e.max_copies
        full = e.prize is None and \
            inventory.get(e.id, 0) + pending[e.id] >= config.items[e.id].max
        if maxed or full:
            out.add(i)
    return frozenset(out)


def _skipped(series: Series, prog: SeriesProgress) -> frozenset[int]:
    """No-repeat-until-complete: collectibles owned, unless the set is complete."""
    if not series.no_repeat_until_complete:
        return frozenset()
    owned = frozenset(i for i in series.set_ids if prog.owned.get(series.entries[i].id, 0) > 0)
    return frozenset() if owned == series.set_ids else owned


def _draw_all(series: Series, prog: SeriesProgress, key: bytes, box: BoxState, client_seed: str,
              count: int, ctx: BoxContext, inventory: Mapping[str, int], now: int,
              config: GameConfig) -> _Batch:
    batch = _Batch()
    stock = dict(ctx.stock_left)
    hit_ten = False
    hash_ = box.seed_hash
    for pos in range(count):
        out = out_of_stock(series, stock)
        step = draw_entry(series, key, client_seed, box.nonce, hard=prog.hard, soft=prog.soft,
                          ten_needed=count == 10 and pos == 9 and not hit_ten, out=out,
                          blocked=_blocked(series, prog, inventory, batch.items, config),
                          skipped=_skipped(series, prog))
        entry = series.entries[step.entry]
        before = {"hard": prog.hard, "soft": prog.soft}
        prog.hard, prog.soft = series.after(prog.hard, prog.soft, entry.rank)
        if series.ten_draw is not None and entry.rank >= series.ten_draw.rank:
            hit_ten = True
        prog.owned[entry.id] = prog.owned.get(entry.id, 0) + 1
        record = {
            "series": series.id, "position": pos, "item": entry.id, "rarity": entry.tier,
            "kind": entry.prize.kind if entry.prize else "item",
            "prize": entry.prize.grant() if entry.prize else None,
            "nonce": box.nonce, "seed_hash": hash_, "client_seed": client_seed,
            "table": series.table_hash, "version": ctx.version,
            "pity_before": before, "pity_after": {"hard": prog.hard, "soft": prog.soft},
            "forced": _tier_of_rank(series, step.forced_rank), "level": step.level,
            "roll": step.roll, "total": step.total,
            "out": sorted(series.entries[i].id for i in step.out),
            "excluded": sorted(series.entries[i].id for i in step.excluded), "at": now,
        }
        if ctx.arm is not None:
            record["arm"] = ctx.arm
        batch.records.append(record)
        if entry.prize is not None:
            stock[entry.id] = stock.get(entry.id, 0) - 1
            batch.prizes[entry.id] += 1
            ref = f"prize:{entry.id}"
            batch.grants.append(ValueGrant(ref, entry.prize.kind, f"draw:{series.id}", {
                "reservation": ref, "prize": entry.id, "series": series.id, "position": pos,
                "nonce": box.nonce, "value": entry.prize.grant(),
                "valid_days": entry.prize.valid_days}))
        else:
            batch.items[entry.id] += 1
        box.nonce += 1
    return batch


def _tier_of_rank(series: Series, rank: int) -> str | None:
    if rank < 0:
        return None
    return next(t.id for t in series.tiers.values() if t.rank == rank)


def _complete(new: PlayerState, series: Series, prog: SeriesProgress,
              config: GameConfig, fx: Effects) -> None:
    """Grant the completion reward the first time the player owns the whole set.

    A free reward: clamped at each balance's limit like the other free rewards (the
    excess lost, a ``grant_capped`` event), never a refusal of the draw that completed
    the set (a refusal would repeat on every retry: the draw is deterministic)."""
    reward = series.completion_reward
    if reward is None or prog.completed:
        return
    if any(prog.owned.get(series.entries[i].id, 0) == 0 for i in series.set_ids):
        return
    prog.completed = True
    grant(new, Reward(currency=dict(reward["currencies"]), items=dict(reward["items"])),
          f"box-set:{series.id}", config, fx)


def draw(state: PlayerState | None, action: DrawBox, now: int, ctx: BoxContext,
         config: GameConfig) -> Outcome:
    """``drawBox``: pay, draw ``action.count`` (1 or 10) boxes, grant; one outcome.

    Raises (before anything changes) on an unknown series, a bad count or client
    seed, the age gate, a closed series, a draw cap, missing funds, or when
    duplicate control leaves nothing to draw.
    """
    series = _series(config, action.series)
    if action.count not in COUNTS:
        raise InvalidInput("count must be 1 or 10", field="count")
    client_seed = check_client_seed(action.client_seed or "")
    check_age(config.boxes.age_gate, ctx.age_band, ctx.guardian_consent)
    _check_window(series, now)
    new = state.copy() if state else new_player(config, now)
    box = new.boxes
    prog = box.series.setdefault(series.id, SeriesProgress())
    day = local_day(now, ctx.tz)
    if prog.day != day:
        prog.day, prog.today = day, 0
    _check_caps(series, prog, action.count, now, ctx.tz)
    if not box.seed:
        check_server_seed(ctx.fresh_seed)
        box.seed, box.nonce = ctx.fresh_seed, 0
    key = check_server_seed(box.seed)
    ledger = _pay(new, series, action.count, config)
    batch = _draw_all(series, prog, key, box, client_seed, action.count, ctx, new.inventory,
                      now, config)
    item_limits = {iid: i.max for iid, i in config.items.items()}
    new.inventory, granted = apply_items(new.inventory, batch.items, f"box:{series.id}",
                                         item_limits)
    fx = Effects()
    _complete(new, series, prog, config, fx)
    ledger += granted + fx.ledger
    prog.today += action.count
    prog.total += action.count
    new.last_seen = now
    return Outcome(
        state=new, ledger=ledger, grants=batch.grants, events=fx.events,
        records=[draw_record(r) for r in batch.records],
        reservations=sorted(StockHold(f"prize:{p}", n) for p, n in batch.prizes.items()),
        response={"draws": batch.records, "wallet": dict(new.wallet),
                  "inventory": dict(new.inventory), "box": series_view(box, series.id),
                  "completed": prog.completed},
    )


def rotate_seed(state: PlayerState | None, action: RotateSeed, now: int, ctx: BoxContext,
                config: GameConfig) -> Outcome:
    """Reveal the current server seed and commit to ``ctx.fresh_seed`` (nonce back to 0).

    With no seed yet this only commits (the server can call it before the first
    draw so the hash is published before any draw).
    """
    check_server_seed(ctx.fresh_seed)
    new = state.copy() if state else new_player(config, now)
    box = new.boxes
    if ctx.fresh_seed == box.seed:
        raise InvalidInput("the new server seed must differ from the current one",
                           field="fresh_seed")
    revealed = None
    if box.seed:
        revealed = {"server_seed": box.seed, "seed_hash": box.seed_hash, "nonces": box.nonce}
    box.seed, box.nonce = ctx.fresh_seed, 0
    return Outcome(state=new, records=[seed_record(revealed)] if revealed else [],
                   response={"revealed": revealed, "seed_hash": box.seed_hash, "nonce": 0})


def draw_record(record: Mapping[str, Any]) -> Record:
    """A draw's row in ``draws``: what is needed to find and verify it."""
    return Record("draws", {
        "series_id": str(record["series"]), "item": str(record["item"]),
        "rarity": str(record["rarity"]), "nonce": int(record["nonce"]),
        "seed_hash": str(record["seed_hash"]), "record": dict(record)})


def seed_record(revealed: Mapping[str, Any]) -> Record:
    """A revealed server seed's row in ``revealed_seeds`` (draws made with it can be
    verified from then on)."""
    return Record("revealed_seeds", {"seed_hash": str(revealed["seed_hash"]),
                                     "seed": str(revealed["server_seed"])}, at="revealed_ms")


LEGACY_RECORDS: dict[str, LegacyRecord] = {
    "box_draw": lambda event: draw_record({k: v for k, v in event.items() if k != "type"}),
    "box_seed_revealed": seed_record,
}
"""Events that servers before typed records wrote into the ledger stream (field ``e``),
by type, and the record each one is: the persister still reads such entries."""


def _progress_view(prog: SeriesProgress, day: int | None) -> dict[str, Any]:
    """Pity, copies owned and draws of one series; ``today`` counts the draws of local
    ``day`` (the stored count is of the day of the last draw: 0 on a later day)."""
    current = day is None or prog.day == day
    return {"pity": {"hard": prog.hard, "soft": prog.soft}, "owned": dict(prog.owned),
            "today": prog.today if current else 0, "day": prog.day if day is None else day,
            "total": prog.total, "completed": prog.completed}


def series_view(box: BoxState, sid: str, day: int | None = None) -> dict[str, Any]:
    """The player's seed commitment and progress in one series (as of local ``day``)."""
    return {"seed_hash": box.seed_hash, "nonce": box.nonce,
            **_progress_view(box.series.get(sid, SeriesProgress()), day)}


def box_view(box: BoxState, day: int | None = None) -> dict[str, Any]:
    """``getPlayer``'s blind-box part: seed hash, next nonce, progress per series (as of
    local ``day``)."""
    return {"seed_hash": box.seed_hash, "nonce": box.nonce,
            "series": {sid: _progress_view(p, day) for sid, p in sorted(box.series.items())}}


def boxes_part(state: PlayerState, config: GameConfig, now: int,
               tz: tzinfo | None) -> dict[str, Any] | None:
    """``getPlayer``'s ``boxes`` key: the seed hash (published before any draw), the
    next nonce and the pity counters per series; None in a game without blind boxes."""
    if not config.boxes.series:
        return None
    return box_view(state.boxes, None if tz is None else local_day(now, tz))


__all__ = ["BoxContext", "BoxState", "DrawBox", "RotateSeed", "SeriesProgress", "box_view",
           "boxes_part",
           "check_age", "draw", "rotate_seed", "series_view"]
