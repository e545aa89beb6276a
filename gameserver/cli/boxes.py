"""``petbox simulate`` and ``petbox verify-draw``: the blind-box tools of the CLI.

Both run the same pure code as the server (``economy.simulate`` and
``economy.fairness``), so what they report is what real draws do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from economy.boxes import Series
from economy.config import GameConfig
from economy.errors import ConfigInvalid
from economy.experiments import arm_config
from economy.fairness import record_table, seed_hash, verify_draw
from economy.simulate import simulate as run_simulation
from gameserver.games import parse_config
from gameserver.ops.provision import load_config_file

MAX_SIMULATED_DRAWS = 100_000_000
"""players × draws above this is refused: about 10 minutes of one core."""


def _config(file: Path) -> GameConfig:
    try:
        return parse_config(load_config_file(file))
    except ConfigInvalid as exc:
        lines = "\n".join(f"  {p['path']}: {p['message']}" for p in exc.problems)
        raise click.ClickException(f"{file} is not a valid game config:\n{lines}") from exc


def _series(config: GameConfig, series_id: str | None) -> Series:
    all_series = config.boxes.series
    if not all_series:
        raise click.ClickException("this config has no blind-box series")
    if series_id is None:
        if len(all_series) > 1:
            raise click.ClickException(f"name a series: --series {' | '.join(all_series)}")
        return next(iter(all_series.values()))
    if series_id not in all_series:
        raise click.ClickException(f"no series {series_id!r}; known: {', '.join(all_series)}")
    return all_series[series_id]


def _report_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['draws']:,} draws by {report['players']:,} players")
    table.add_column("item or tier")
    table.add_column("count", justify="right")
    table.add_column("rate", justify="right")
    for name, row in report["items"].items():
        table.add_row(name, f"{row['count']:,}", f"{row['rate']:.4%}")
    table.add_section()
    for name, row in report["tiers"].items():
        table.add_row(f"[bold]{name}[/]", f"{row['count']:,}", f"{row['rate']:.4%}")
    return table


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--series", "series_id", help="series to simulate (needed if several)")
@click.option("--players", default=1000, show_default=True, type=click.IntRange(1, 10**7))
@click.option("--draws", default=100, show_default=True, type=click.IntRange(0, 10**7),
              help="draws per player (a multiple of --batch)")
@click.option("--batch", default=1, show_default=True, type=click.Choice(["1", "10"]),
              help="single draws or 10-draws")
@click.option("--seed", default="0", show_default=True, help="simulation seed (reproducible)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def simulate(file: Path, series_id: str | None, players: int, draws: int, batch: str,
             seed: str, as_json: bool) -> None:
    """Monte Carlo over a series: item and tier rates, pity, cost per draw, set completion,
    when limited prizes sell out."""
    size = int(batch)
    if draws % size:
        raise click.BadParameter(f"must be a multiple of {size}", param_hint="--draws")
    if players * draws > MAX_SIMULATED_DRAWS:
        raise click.BadParameter(f"players × draws must be ≤ {MAX_SIMULATED_DRAWS:,}")
    series = _series(_config(file), series_id)
    console = Console(stderr=True)
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.completed:,} draws"),
                  TimeRemainingColumn(), console=console, disable=as_json) as progress:
        task = progress.add_task("sim", total=players * draws)
        result = run_simulation(series, players, draws, seed, batch=size,
                                on_round=lambda done: progress.update(task, completed=done))
    report = result.to_json()
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    out = Console()
    out.print(_report_table(report))
    out.print(f"pity: forced {report['pity']['forced_rate']:.4%}, "
              f"boosted {report['pity']['boosted_rate']:.4%}")
    out.print(f"prize cost per draw: {report['prize_cost_fen_per_draw'] / 100:.2f} CNY")
    quantiles = report["complete_set"]["draws"]
    shown = " / ".join(_or_never(quantiles.get(q)) for q in ("p50", "p90", "p99"))
    out.print(f"set completed by {report['complete_set']['players']:,} players; draws "
              f"p50 / p90 / p99: {shown}")
    for prize, at in sorted(report["sold_out_at_draw"].items()):
        out.print(f"{prize} sold out at draw: {_or_never(at)}")


def _or_never(value: Any) -> str:
    """A draw count, or what its absence means (not reached within the simulation)."""
    return "not reached" if value is None else f"{value:,}"


def _records(raw: Any) -> list[dict[str, Any]]:
    """A draw record, a list of them, or a ``listDraws`` page."""
    if isinstance(raw, dict) and "draws" in raw:
        raw = raw["draws"]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise click.ClickException("expected a draw record, a list, or a listDraws page")
    return raw


def _verify_one(config: GameConfig, record: dict[str, Any], seed: str | None) -> str | None:
    """None when the record checks out, else why not."""
    server_seed = seed or record.get("server_seed")
    if not server_seed:
        return "no server seed: rotate it (rotateSeed) to reveal it, or pass --seed"
    if record.get("arm"):  # drawn under an experiment arm: that arm's table decides
        experiment, _, arm = str(record["arm"]).partition("/")
        arm_cfg = arm_config(config, experiment, arm)
        if arm_cfg is None:
            return f"arm {record['arm']!r} is not in this config"
        config = arm_cfg
    series = config.boxes.series.get(str(record.get("series")))
    if series is None:
        return f"series {record.get('series')!r} is not in this config"
    if seed_hash(server_seed) != record.get("seed_hash"):
        return "the seed does not match the published seed hash"
    if series.table_hash != record.get("table"):
        return "the config's table differs from the draw's (use the version the draw names)"
    got = verify_draw(server_seed, str(record["client_seed"]), int(record["nonce"]),
                      record_table(series, record))
    if got.item != record.get("item") or got.roll != record.get("roll"):
        return f"recomputed {got.item} (roll {got.roll}), record says {record.get('item')}"
    return None


@click.command("verify-draw")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("records_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", help="the revealed server seed (default: the record's server_seed)")
def verify_draw_command(config_file: Path, records_file: Path, seed: str | None) -> None:
    """Recompute draws from a revealed seed: RECORDS_FILE holds draw records (a listDraws
    page works) and CONFIG_FILE the game version they name. Exit 1 if any fails."""
    config = _config(config_file)
    records = _records(json.loads(records_file.read_text()))
    failures = 0
    for record in records:
        problem = _verify_one(config, record, seed)
        label = f"nonce {record.get('nonce')} {record.get('item')}"
        if problem is None:
            click.echo(f"ok    {label}")
        else:
            failures += 1
            click.echo(f"FAIL  {label}: {problem}")
    click.echo(f"{len(records) - failures} of {len(records)} draws verified")
    if failures:
        raise SystemExit(1)
