"""``petbox experiment …``: experiments from the command line, straight against SQL.

The same rules as the admin API (``economy.experiments`` for the config edits,
``gameserver.db.configs`` for publishing, ``gameserver.db.experiments`` for results):

    petbox experiment list|show|results MERCHANT GAME [EXPERIMENT]
    petbox experiment put MERCHANT GAME EXPERIMENT FILE
    petbox experiment stop MERCHANT GAME EXPERIMENT
    petbox experiment ship MERCHANT GAME EXPERIMENT ARM [--confirm]
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from economy.experiment_edits import (
    ExperimentNotFound,
    put_experiment,
    ship_arm,
    stop_experiment,
)
from economy.experiments import status_at
from gameserver.cli.common import cli_settings, run, with_db
from gameserver.db import configs
from gameserver.db.database import Database
from gameserver.db.experiments import experiment_results
from gameserver.games import parse_config
from gameserver.ops.jsondiff import diff


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _live(db: Database, merchant: str, game: str) -> Any:
    return configs.resolve(db, merchant, game, "live")


def _publish(merchant: str, game: str, note: str,
             change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    async def work(db: Database) -> configs.Published:
        async with db.begin() as conn:
            return await configs.publish_change_in(conn, merchant, game, int(time.time()),
                                                   note, change)

    done = run(lambda: with_db(cli_settings(), work))
    state = "published" if done.changed else "unchanged (already live)"
    click.echo(f"{merchant}/{game} v{done.version} {state}: {done.note}")


@click.group("experiment")
def experiment() -> None:
    """A/B tests of a game's config (docs/experiments.md)."""


@experiment.command("list")
@click.argument("merchant")
@click.argument("game")
def list_cmd(merchant: str, game: str) -> None:
    """The experiments of GAME's live config, one line each."""
    _, config = run(lambda: with_db(cli_settings(), lambda db: _live(db, merchant, game)))
    now = int(time.time())
    for eid, exp in sorted((config.get("experiments") or {}).items()):
        arms = ", ".join(f"{a} {v['percent']}%" for a, v in exp["arms"].items())
        status = status_at(exp.get("status", "draft"), exp["stops_at"], now)  # ended?
        click.echo(f"{eid}\t{status}\t{arms}\t{exp['name']}")


@experiment.command("show")
@click.argument("merchant")
@click.argument("game")
@click.argument("name")
def show_cmd(merchant: str, game: str, name: str) -> None:
    """One experiment of the live config, as JSON."""
    _, config = run(lambda: with_db(cli_settings(), lambda db: _live(db, merchant, game)))
    exp = (config.get("experiments") or {}).get(name)
    if exp is None:
        raise click.ClickException(f"no experiment {name!r} in the live config")
    click.echo(_dump(exp))


@experiment.command("put")
@click.argument("merchant")
@click.argument("game")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def put_cmd(merchant: str, game: str, name: str, file: Path) -> None:
    """Create or edit experiment NAME from FILE (JSON); publishes a new version."""
    body = json.loads(file.read_text())
    if not isinstance(body, dict):
        raise click.ClickException("FILE must hold a JSON object")
    salt, now = secrets.token_hex(8), int(time.time())
    _publish(merchant, game, f"experiment {name}: put",
             lambda c: put_experiment(c, name, body, now, salt))


@experiment.command("stop")
@click.argument("merchant")
@click.argument("game")
@click.argument("name")
def stop_cmd(merchant: str, game: str, name: str) -> None:
    """Stop experiment NAME: everyone back on the live config (a new version)."""
    _publish(merchant, game, f"experiment {name}: stop", lambda c: stop_experiment(c, name))


@experiment.command("ship")
@click.argument("merchant")
@click.argument("game")
@click.argument("name")
@click.argument("arm")
@click.option("--confirm", is_flag=True, help="publish (without it: show the diff only)")
def ship_cmd(merchant: str, game: str, name: str, arm: str, confirm: bool) -> None:
    """Ship ARM of experiment NAME: its merged config becomes the next version."""
    if confirm:
        _publish(merchant, game, f"experiment {name}: ship arm {arm}",
                 lambda c: ship_arm(c, name, arm))
        return
    _, config = run(lambda: with_db(cli_settings(), lambda db: _live(db, merchant, game)))
    for change in diff(config, ship_arm(json.loads(json.dumps(config)), name, arm)):
        click.echo(f"{change['op']:8} {change['path']}: {change.get('from')!r} → "
                   f"{change.get('to')!r}")
    click.echo("(nothing published: run again with --confirm)")


@experiment.command("results")
@click.argument("merchant")
@click.argument("game")
@click.argument("name")
def results_cmd(merchant: str, game: str, name: str) -> None:
    """Per-arm results of experiment NAME (JSON, as getExperimentResults)."""
    async def work(db: Database) -> dict[str, Any]:
        _, raw = await _live(db, merchant, game)
        config = parse_config(raw)
        exp = config.experiments.get(name)
        if exp is None:
            raise ExperimentNotFound(name)
        return await experiment_results(db, merchant, game, exp, ZoneInfo(config.timezone),
                                        int(time.time()))

    click.echo(_dump(run(lambda: with_db(cli_settings(), work))))
