"""Versioned game configs in SQL: drafts, publishing, rollback, version reads.

Shared by the admin API (``gameserver.api.configs``) and the CLI
(``gameserver.cli.admin``), so both enforce the same rules:

- A draft is stored only when it is valid (:func:`put_draft` raises
  ``ConfigInvalid`` listing every problem first); it is the game's one editable
  config and is never touched by publishing or rolling back.
- Publishing turns the draft into the next immutable version and makes it live.
  The :class:`~gameserver.games.GameRegistry` of every process polls which
  version is live, so it is served everywhere within a second; a request that
  already resolved its config finishes on it.
- **Rollback publishes a new version** holding the chosen older version's config
  (note ``rollback to vN``) instead of pointing ``live_version`` back. Versions
  stay append-only and ``live_version`` only grows, so the version list is the
  full audit trail (what was live when, who went back to what), and anything that
  records the version it ran on (draw records, caches keyed by version) never
  sees a number reused for a different moment.
- Publishing or rolling back to exactly the config already live changes nothing
  and says so (``changed: false``), which makes a retried request harmless.

Every write starts with an ``UPDATE`` of the game's row: on PostgreSQL that
locks the row, on SQLite it takes the write lock, so two publishes of one game
serialize instead of racing for the same version number.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.config import follow_problems
from economy.errors import ConfigInvalid, DomainError, NotFound, Refusal
from gameserver.db import models as m
from gameserver.db.database import Database, config_checksum
from gameserver.games import parse_config

NOTE_MAX = 200
ROLLBACK_NOTE = "rollback to v{version}"


class NoDraft(DomainError):
    """Publishing a game that has no draft."""

    code = "no_draft"
    kind = Refusal.CONFLICT

    def __init__(self, game: str) -> None:
        super().__init__("this game has no draft to publish: PUT one first", game=game)


@dataclass(frozen=True)
class GameRow:
    """A game's row: which version is live and its draft."""

    merchant: str
    game: str
    live_version: int | None
    draft: dict[str, Any] | None
    draft_updated_at: int | None
    created_at: int
    updated_at: int

    def draft_view(self) -> dict[str, Any] | None:
        """The draft as the API shows it (``None`` when there is none)."""
        if self.draft is None:
            return None
        return {"updated_at": self.draft_updated_at, "checksum": config_checksum(self.draft)}


@dataclass(frozen=True)
class Published:
    """The outcome of a publish or rollback."""

    game: str
    version: int
    checksum: str
    published_at: int
    note: str
    changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"game": self.game, "version": self.version, "live_version": self.version,
                "checksum": self.checksum, "published_at": self.published_at,
                "note": self.note, "changed": self.changed}


def _where_game(merchant: str, game: str) -> tuple[Any, Any]:
    return m.games.c.merchant_id == merchant, m.games.c.game_id == game


def _where_version(merchant: str, game: str, version: int) -> tuple[Any, Any, Any]:
    v = m.game_versions
    return v.c.merchant_id == merchant, v.c.game_id == game, v.c.version == version


async def game_row(db: Database, merchant: str, game: str) -> GameRow | None:
    """The game's row for this merchant, or None (unknown, or another merchant's)."""
    g = m.games
    async with db.connect() as conn:
        row = (await conn.execute(
            select(g.c.live_version, g.c.draft, g.c.draft_updated_at, g.c.created_at,
                   g.c.updated_at).where(*_where_game(merchant, game)))).first()
    return GameRow(merchant, game, *row) if row else None


async def require_game(db: Database, merchant: str, game: str) -> GameRow:
    row = await game_row(db, merchant, game)
    if row is None:
        raise NotFound("game not found", game=game)
    return row


def validate_config(config: Any) -> None:
    """Raise ``ConfigInvalid`` with every problem and its JSON path, or return."""
    parse_config(config)


async def put_draft(db: Database, merchant: str, game: str, config: Any, now: int) -> GameRow:
    """Validate ``config`` and store it as the game's draft (creating the game if new).

    An invalid config raises ``ConfigInvalid`` before anything is written.
    """
    async with db.begin() as conn:
        return await put_draft_in(conn, db, merchant, game, config, now)


async def put_draft_in(conn: AsyncConnection, db: Database, merchant: str, game: str,
                       config: Any, now: int) -> GameRow:
    """:func:`put_draft` in the caller's transaction (with its Idempotency-Key record)."""
    validate_config(config)
    stmt = db.dialect_insert(m.games).values(
        merchant_id=merchant, game_id=game, draft=config, draft_updated_at=now,
        created_at=now, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["merchant_id", "game_id"],
        set_={"draft": config, "draft_updated_at": now, "updated_at": now})
    await conn.execute(stmt)
    g = m.games
    row = (await conn.execute(
        select(g.c.live_version, g.c.draft, g.c.draft_updated_at, g.c.created_at,
               g.c.updated_at).where(*_where_game(merchant, game)))).one()
    return GameRow(merchant, game, *row)


async def _lock(conn: AsyncConnection, merchant: str, game: str, now: int) -> int | None:
    """Lock the game's row (see the module doc); NotFound if there is none.

    Returns the live version as of the lock.
    """
    done = await conn.execute(update(m.games).where(*_where_game(merchant, game))
                              .values(updated_at=now))
    if done.rowcount == 0:
        raise NotFound("game not found", game=game)
    live: int | None = (await conn.execute(
        select(m.games.c.live_version).where(*_where_game(merchant, game)))).scalar()
    return live


async def _version_row(conn: AsyncConnection, merchant: str, game: str,
                       version: int) -> dict[str, Any] | None:
    v = m.game_versions
    row = (await conn.execute(
        select(v.c.version, v.c.config, v.c.checksum, v.c.published_at, v.c.note)
        .where(*_where_version(merchant, game, version)))).first()
    return dict(row._mapping) if row else None


async def _publish_in(conn: AsyncConnection, merchant: str, game: str, live: int | None,
                      config: dict[str, Any], now: int, note: str) -> Published:
    """Insert ``config`` as the next version and make it live, unless it is live already."""
    checksum = config_checksum(config)
    current = await _version_row(conn, merchant, game, live) if live else None
    if current is not None and current["checksum"] == checksum:
        return Published(game, live or 0, checksum, current["published_at"], current["note"],
                         changed=False)
    problems = await _reused_experiment_ids(
        conn, merchant, game, current["config"] if current else {}, config)
    if current is not None:  # what players hold under the live version must still fit
        problems = follow_problems(current["config"], config, now) + problems
    if problems:
        raise ConfigInvalid(problems)
    v = m.game_versions
    last = (await conn.execute(
        select(v.c.version).where(v.c.merchant_id == merchant, v.c.game_id == game)
        .order_by(v.c.version.desc()).limit(1))).scalar()
    version = (last or 0) + 1
    await conn.execute(v.insert().values(
        merchant_id=merchant, game_id=game, version=version, config=config,
        checksum=checksum, published_at=now, note=note[:NOTE_MAX]))
    await conn.execute(update(m.games).where(*_where_game(merchant, game))
                       .values(live_version=version, updated_at=now))
    return Published(game, version, checksum, now, note[:NOTE_MAX], changed=True)


async def _reused_experiment_ids(conn: AsyncConnection, merchant: str, game: str,
                                 live: dict[str, Any], config: dict[str, Any]
                                 ) -> list[dict[str, str]]:
    """Problems of experiments ``config`` adds (absent from ``live``) as draft or running
    under the id of an earlier experiment that exposed shoppers.

    A shopper's exposure marks the arm under the experiment id in their state, and that
    mark wins over the hash; the exposure rows count in the id's results. An experiment
    stopped, removed and added again under its id (a new salt, new arms) would keep those
    shoppers in their old arms (an arm name the new one shares, or out of it) and mix the
    old exposures into its results; a rollback past the removal would set the stopped
    one running again. Added back stopped or shipped it assigns nobody: allowed."""
    olds = live.get("experiments") or {}
    added = sorted(eid for eid, e in (config.get("experiments") or {}).items()
                   if eid not in olds and isinstance(e, dict)
                   and e.get("status", "draft") in ("draft", "running"))
    x = m.experiment_exposures
    problems = []
    for eid in added:
        used = (await conn.execute(select(x.c.user_id).where(
            x.c.merchant_id == merchant, x.c.game_id == game,
            x.c.experiment == eid).limit(1))).first()
        if used is not None:
            problems.append({"path": f"$.experiments.{eid}", "message": (
                "this id belongs to an earlier experiment that exposed shoppers (their arm "
                "stays marked under it, and its results count them): give the new "
                "experiment a new id")})
    return problems


async def publish_draft(db: Database, merchant: str, game: str, now: int,
                        note: str = "") -> Published:
    """The game's draft becomes its next immutable version, live at once.

    The draft is re-validated (the zone database or the schema may have moved
    since it was stored) and read under the same lock as the publish, so what is
    published is exactly the draft of that moment.
    """
    async with db.begin() as conn:
        return await publish_draft_in(conn, merchant, game, now, note)


async def publish_draft_in(conn: AsyncConnection, merchant: str, game: str, now: int,
                           note: str = "") -> Published:
    """:func:`publish_draft` in the caller's transaction."""
    live = await _lock(conn, merchant, game, now)
    draft = (await conn.execute(
        select(m.games.c.draft).where(*_where_game(merchant, game)))).scalar()
    if draft is None:
        raise NoDraft(game)
    validate_config(draft)
    return await _publish_in(conn, merchant, game, live, draft, now, note)


async def rollback(db: Database, merchant: str, game: str, version: int, now: int,
                   note: str = "") -> Published:
    """Publish version ``version``'s config again as a new version (see the module doc).

    NotFound if this game (of this merchant) has no such version.
    """
    async with db.begin() as conn:
        return await rollback_in(conn, merchant, game, version, now, note)


async def rollback_in(conn: AsyncConnection, merchant: str, game: str, version: int,
                      now: int, note: str = "") -> Published:
    """:func:`rollback` in the caller's transaction."""
    live = await _lock(conn, merchant, game, now)
    target = await _version_row(conn, merchant, game, version)
    if target is None:
        raise NotFound("game version not found", game=game, version=version)
    label = ROLLBACK_NOTE.format(version=version)
    return await _publish_in(conn, merchant, game, live, target["config"], now,
                             f"{label}: {note}" if note else label)


async def get_version(db: Database, merchant: str, game: str,
                      version: int) -> dict[str, Any]:
    """One published version with its config; NotFound if this game has no such version."""
    async with db.connect() as conn:
        row = await _version_row(conn, merchant, game, version)
    if row is None:
        raise NotFound("game version not found", game=game, version=version)
    return row


LOOK_BACK_VERSIONS = 500
"""How many published versions :func:`last_version_with` reads, newest first."""


async def last_version_with(db: Database, merchant: str, game: str, section: str,
                            item: str) -> int | None:
    """The newest published version whose config has ``item`` in its ``section`` (an
    experiment removed since, whose rows stay in SQL), within the last
    :data:`LOOK_BACK_VERSIONS`; None if none has it."""
    v = m.game_versions
    async with db.report.connect() as conn:
        rows = (await conn.execute(
            select(v.c.version, v.c.config).where(v.c.merchant_id == merchant,
                                                  v.c.game_id == game)
            .order_by(v.c.version.desc()).limit(LOOK_BACK_VERSIONS))).all()
    for version, config in rows:
        if isinstance(config, dict) and item in (config.get(section) or {}):
            return int(version)
    return None


async def list_versions(db: Database, merchant: str, game: str) -> dict[str, Any]:
    """The game's live version, draft summary and versions (newest first, no configs)."""
    row = await require_game(db, merchant, game)
    versions = await db.list_versions(merchant, game)
    return {"game": game, "live_version": row.live_version, "draft": row.draft_view(),
            "versions": versions}


async def resolve(db: Database, merchant: str, game: str,
                  ref: str) -> tuple[str, dict[str, Any]]:
    """A config named by ``ref``: a version number, ``live`` or ``draft``.

    Returns ``(label, config)``; NotFound for anything this game does not have.
    """
    if ref in ("live", "draft"):
        row = await require_game(db, merchant, game)
        if ref == "draft":
            if row.draft is None:
                raise NotFound("this game has no draft", game=game)
            return "draft", row.draft
        if row.live_version is None:
            raise NotFound("this game has no live version", game=game)
        ref = str(row.live_version)
    version = parse_version(ref)
    if version is None:
        raise NotFound("game version not found", game=game, version=ref)
    return f"v{version}", (await get_version(db, merchant, game, version))["config"]


def parse_version(text: str) -> int | None:
    """A version number from a path segment, or None when it cannot be one."""
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        return None
    number = int(text)
    return number if number >= 1 else None


def problems_of(config: Any) -> list[dict[str, str]]:
    """The validation problems of ``config`` (``[]`` when valid)."""
    try:
        validate_config(config)
    except ConfigInvalid as exc:
        return exc.problems
    return []


async def list_games(db: Database, merchant: str) -> list[dict[str, Any]]:
    """The merchant's games by id: live version, whether a draft exists, and when each
    last changed (the console's game picker)."""
    g = m.games
    async with db.connect() as conn:
        rows = (await conn.execute(
            select(g.c.game_id, g.c.live_version, g.c.draft_updated_at, g.c.updated_at)
            .where(g.c.merchant_id == merchant).order_by(g.c.game_id))).all()
    return [{"game": r.game_id, "live_version": r.live_version,
             "has_draft": r.draft_updated_at is not None,
             "draft_updated_at": r.draft_updated_at, "updated_at": r.updated_at}
            for r in rows]


async def publish_change_in(conn: AsyncConnection, merchant: str, game: str, now: int,
                            note: str,
                            change: Callable[[dict[str, Any]], dict[str, Any]]) -> Published:
    """Publish ``change(live config)`` as the next version, under the game's lock (the
    live config read and the publish are one moment). ``change`` gets a copy of the live
    config as stored and may raise a refusal; the result is validated in full. NotFound
    when the game has no live version."""
    live = await _lock(conn, merchant, game, now)
    current = await _version_row(conn, merchant, game, live) if live else None
    if current is None:
        raise NotFound("this game has no live version", game=game)
    config = change(copy.deepcopy(current["config"]))
    validate_config(config)
    return await _publish_in(conn, merchant, game, live, config, now, note)
