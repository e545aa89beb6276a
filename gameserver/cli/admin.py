"""Merchant tools on the command line: drafts, versions, rollback, diff, analytics, export.

The same rules as the admin API (``gameserver.db.configs``, ``.analytics``,
``.export``), run straight against SQL with the ``PETBOX_*`` settings, for
operators and scripts. :func:`register` attaches the commands to ``petbox``:

    petbox game draft|publish-draft|versions|show|rollback|diff MERCHANT GAME ...
    petbox analytics MERCHANT GAME [--days N] [--end DATE] [--json]
    petbox export MERCHANT GAME [--cursor C] [--limit N] > events.ndjson
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from economy.errors import InvalidInput, NotFound
from gameserver.cli.common import cli_settings, run, with_db
from gameserver.db.database import Database
from gameserver.state.keys import GAME_RE

T = TypeVar("T")


def _in_db(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` against the configured database, errors as clean CLI messages."""
    settings = cli_settings()
    return run(lambda: with_db(settings, work))


async def _merchant_exists(db: Database, merchant: str) -> None:
    if await db.merchant(merchant) is None:
        raise NotFound(f"no merchant {merchant!r}", merchant=merchant)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# -- game configs --------------------------------------------------------------------


@click.command("draft")
@click.argument("merchant")
@click.argument("game")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def game_draft(merchant: str, game: str, file: Path) -> None:
    """Validate FILE and store it as GAME's draft (every problem listed if invalid)."""
    from gameserver.db import configs
    from gameserver.ops.provision import load_config_file

    async def work(db: Database) -> configs.GameRow:
        if not GAME_RE.fullmatch(game):
            raise InvalidInput(f"game id must match {GAME_RE.pattern}", game=game)
        config = load_config_file(file)
        await _merchant_exists(db, merchant)
        return await configs.put_draft(db, merchant, game, config, int(time.time()))

    row = _in_db(work)
    view = row.draft_view() or {}
    click.echo(f"draft of {merchant}/{game} stored (checksum {view.get('checksum', '')[:12]}); "
               f"live version: {row.live_version or 'none'}")


@click.command("publish-draft")
@click.argument("merchant")
@click.argument("game")
@click.option("--note", default="", help="why this version (shown in the version list)")
def game_publish_draft(merchant: str, game: str, note: str) -> None:
    """Publish GAME's draft as its next version (live on every server within a second)."""
    from gameserver.db import configs

    done = _in_db(lambda db: configs.publish_draft(db, merchant, game, int(time.time()), note))
    _say_published(merchant, done)


def _say_published(merchant: str, done: Any) -> None:
    if done.changed:
        click.echo(f"published {merchant}/{done.game} version {done.version} ({done.note})"
                   if done.note else f"published {merchant}/{done.game} version {done.version}")
    else:
        click.echo(f"{merchant}/{done.game}: that config is live already "
                   f"(version {done.version}); nothing published")


@click.command("versions")
@click.argument("merchant")
@click.argument("game")
@click.option("--json", "as_json", is_flag=True,
              help="print {live_version, versions: [...]} as JSON")
def game_versions(merchant: str, game: str, as_json: bool) -> None:
    """List GAME's versions, newest first; * marks the live one."""
    from gameserver.db import configs

    listing = _in_db(lambda db: configs.list_versions(db, merchant, game))
    if as_json:
        click.echo(_dump(listing))
        return
    for v in listing["versions"]:
        mark = "*" if v["version"] == listing["live_version"] else " "
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v["published_at"]))
        click.echo(f"{mark} v{v['version']:<4} {stamp} UTC  {v['checksum'][:12]}  {v['note']}")
    draft = listing["draft"]
    click.echo(f"  draft  {draft['checksum'][:12]}" if draft else "  (no draft)")


@click.command("show")
@click.argument("merchant")
@click.argument("game")
@click.argument("version")
def game_show(merchant: str, game: str, version: str) -> None:
    """Print the config of VERSION (a number, live or draft) as JSON."""
    from gameserver.db import configs

    _label, config = _in_db(lambda db: configs.resolve(db, merchant, game, version))
    click.echo(_dump(config))


@click.command("rollback")
@click.argument("merchant")
@click.argument("game")
@click.argument("version", type=click.IntRange(1))
@click.option("--note", default="", help="why (appended to the version note)")
def game_rollback(merchant: str, game: str, version: int, note: str) -> None:
    """Make VERSION's config live again, published as a new version."""
    from gameserver.db import configs

    done = _in_db(lambda db: configs.rollback(db, merchant, game, version, int(time.time()),
                                              note))
    _say_published(merchant, done)


@click.command("diff")
@click.argument("merchant")
@click.argument("game")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="print the changes as JSON")
def game_diff(merchant: str, game: str, a: str, b: str, as_json: bool) -> None:
    """What changes from config A to config B (version numbers, live or draft)."""
    from gameserver.db import configs
    from gameserver.ops.jsondiff import diff

    async def work(db: Database) -> tuple[str, str, list[dict[str, Any]]]:
        old_label, old = await configs.resolve(db, merchant, game, a)
        new_label, new = await configs.resolve(db, merchant, game, b)
        return old_label, new_label, diff(old, new)

    old_label, new_label, changes = _in_db(work)
    if as_json:
        click.echo(_dump({"from": old_label, "to": new_label, "changes": changes}))
        return
    click.echo(f"{old_label} → {new_label}: {len(changes)} change(s)")
    for c in changes:
        click.echo(format_change(c))


def format_change(change: dict[str, Any]) -> str:
    """One diff line: ``+ path = value``, ``- path (was value)``, ``~ path: a → b``."""
    def show(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    if change["op"] == "added":
        return f"+ {change['path']} = {show(change['to'])}"
    if change["op"] == "removed":
        return f"- {change['path']} (was {show(change['from'])})"
    return f"~ {change['path']}: {show(change['from'])} → {show(change['to'])}"


# -- analytics and export ------------------------------------------------------------


@click.command("analytics")
@click.argument("merchant")
@click.argument("game")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366))
@click.option("--end", default=None, type=click.DateTime(["%Y-%m-%d"]),
              help="last day (YYYY-MM-DD, game's time zone); default today")
@click.option("--json", "as_json", is_flag=True, help="the getAnalytics JSON")
def analytics_cmd(merchant: str, game: str, days: int, end: Any, as_json: bool) -> None:
    """DAU, new players, draws, coupons, active minutes and retention of GAME."""
    from gameserver.api.analytics import FIRST_END, analytics_report

    if end is not None and end.date() < FIRST_END:
        raise click.BadParameter(f"must be {FIRST_END.isoformat()} or later",
                                 param_hint="--end")
    report = _in_db(lambda db: analytics_report(db, merchant, game, int(time.time()), days,
                                                end.date() if end else None))
    click.echo(_dump(report) if as_json else format_report(report))


def _pct(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "    -"
    return "    ." if cell["rate"] is None else f"{cell['rate'] * 100:4.0f}%"


def format_report(report: dict[str, Any]) -> str:
    """The analytics report as plain-text tables."""
    lines = [f"{report['game']}  {report['from']} .. {report['to']}  ({report['timezone']})",
             "", "date         dau    new  draws coupons  min/player    D1    D7   D30"]
    cohorts = {c["date"]: c for c in report["cohorts"]}
    for d in report["days"]:
        c = cohorts[d["date"]]
        lines.append(f"{d['date']}  {d['dau']:5} {d['new_players']:6} {d['draws']:6} "
                     f"{d['coupons_granted']:7} {d['avg_active_minutes']:11.2f} "
                     f"{_pct(c['d1'])} {_pct(c['d7'])} {_pct(c['d30'])}")
    lines += ["", "week of      cohort     W1    W2    W3    W4"]
    for w in report["weekly"]:
        lines.append(f"{w['week_start']}  {w['size']:6} " + " ".join(
            _pct(w[f"w{k}"]) for k in (1, 2, 3, 4)))
    t = report["totals"]
    weekly = t["weekly_retention"]
    lines += ["", f"players {t['players']}, active {t['active_players']}, new "
                  f"{t['new_players']}, draws {t['draws']}, coupons {t['coupons_granted']}, "
                  f"weekly retention (W1) {_pct(weekly).strip() if weekly else '-'}",
              "(- : not over yet, . : empty cohort)"]
    return "\n".join(lines)


@click.command("export")
@click.argument("merchant")
@click.argument("game")
@click.option("--cursor", default="", help="resume after this cursor (from an earlier export)")
@click.option("--limit", default=None, type=click.IntRange(1, 10_000_000),
              help="at most this many events")
def export_cmd(merchant: str, game: str, cursor: str, limit: int | None) -> None:
    """Write GAME's events as NDJSON to stdout (the next cursor also goes to stderr)."""
    from gameserver.db import configs, export

    out = sys.stdout.buffer
    settings = cli_settings()  # the token secret keys the cursors, as on the servers

    async def work(db: Database) -> str:
        await configs.require_game(db, merchant, game)
        cursors = export.codec(settings.token_secret, merchant, game)
        plan = await export.plan(db, cursors, cursor or None, limit)
        last = b""
        async for chunk in export.chunks(db, plan):
            out.write(chunk)
            last = chunk
        out.flush()
        return str(json.loads(last)["cursor"]) if last else ""

    click.echo(f"next cursor: {run(lambda: with_db(settings, work))}", err=True)


def register(main: click.Group, game: click.Group) -> None:
    """Attach the commands: config ones under ``petbox game``, the rest at the top."""
    for command in (game_draft, game_publish_draft, game_versions, game_show, game_rollback,
                    game_diff):
        game.add_command(command)
    main.add_command(analytics_cmd)
    main.add_command(export_cmd)
