"""``petbox loadtest``: generate, inspect and replay traces, and report on replays.

The group is importable on its own (``python -m loadtests``) and is attached to
the main ``petbox`` command. Heavy modules load only inside the commands.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from loadtests.slo import SloError, evaluate, gates_or_default


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``90``, ``90s``, ``2m``, ``12.5m``, ``1h``, ``250ms`` → seconds."""

    name = "duration"
    _UNITS: ClassVar[dict[str, float]] = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0,
                                           "h": 3600.0}

    def __init__(self, positive: bool = False) -> None:
        self.positive = positive
        """Refuse zero (a timeout, a run's or a trace's length: zero means nothing)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|min|m|h)?\s*", str(value))
            if m is None:
                self.fail(f"{value!r} is not a duration like 30s, 2m or 1h", param, ctx)
            seconds = float(m[1]) * self._UNITS[m[2] or "s"]
        if self.positive and seconds <= 0:
            self.fail(f"{value!r}: must be longer than 0", param, ctx)
        return seconds


DURATION = Duration()
POSITIVE_DURATION = Duration(positive=True)
"""A duration that must be longer than zero (``--timeout 0`` made every request fail to
connect, reported as the target being unreachable; ``--duration 0`` was read as unset
and made a 10-minute trace; ``--max-duration 0`` ran nothing and passed)."""


class Share(click.ParamType):  # type: ignore[type-arg]
    """``1%`` or ``0.01`` → a fraction within 0..1."""

    name = "share"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            self.fail(f"{value!r} is not a share like 1% or 0.01", param, ctx)
        if not 0 <= share <= 1:
            self.fail(f"{value!r}: a share is within 0..100%", param, ctx)
        return share


SHARE = Share()


def _ops(value: str | None) -> frozenset[str] | None:
    from loadtests.ops import parse_ops

    try:
        return parse_ops(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ops") from exc


SLO_HELP = ("gate, e.g. p99=50ms or errors=0.1% (repeatable); none given: the default "
            "gates 5xx=0, timeouts=0, transport=0")


def _gates(texts: tuple[str, ...]) -> list[Any]:
    """The --slo gates, or the default ones (a run is never judged on nothing)."""
    try:
        return gates_or_default(texts)
    except SloError as exc:
        raise click.BadParameter(str(exc), param_hint="--slo") from exc


def _verdict_options(fn: Any) -> Any:
    """Options of the run verdict, shared by replay, report and merge."""
    for opt in reversed((
        click.option("--allow-generator-bound", is_flag=True,
                     help="report a starved generator but do not fail the run for it"),
        click.option("--allow-saturated", is_flag=True,
                     help="report saturation but do not fail the run for it (capacity search)"),
        click.option("--max-lateness", type=DURATION, default="50ms", show_default=True,
                     help="send lateness p99 above this: the generator is starved"),
        click.option("--max-shed", type=SHARE, default="1%", show_default=True,
                     help="more requests than this shed (429/503 with Retry-After): "
                     "SATURATED"),
        click.option("--slow-target", type=DURATION, default="1s", show_default=True,
                     help="the target's own p99 from which waits for a connection are "
                     "its slowness (SATURATED), not the generator's"),
    )):
        fn = opt(fn)
    return fn


def _limits(kw: dict[str, Any]) -> Any:
    from loadtests.verdict import Limits

    return Limits(max_lateness_ms=kw["max_lateness"] * 1000, max_shed=kw["max_shed"],
                  slow_target_ms=kw["slow_target"] * 1000,
                  allow_generator_bound=kw["allow_generator_bound"],
                  allow_saturated=kw["allow_saturated"])


@click.group("loadtest")
def loadtest() -> None:
    """Load tests: generate or record traces, replay them open-loop, gate on SLOs."""


# -- generate ---------------------------------------------------------------------------------


@loadtest.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="trace file to write (.pbt)")
@click.option("--shape", type=click.Choice(["steady", "diurnal", "singles-day"]),
              default="singles-day", show_default=True)
@click.option("--baseline", "-B", type=click.FloatRange(min=0), default=50.0, show_default=True,
              help="baseline B, requests/s")
@click.option("--read-share", type=click.FloatRange(0.01, 0.99), default=0.5, show_default=True,
              help="share of the baseline that is reads")
@click.option("--read-boost", type=click.FloatRange(3, 5), default=4.0, show_default=True,
              help="singles-day: reads at T-60s, ×B (from T-10 min)")
@click.option("--storm", type=click.FloatRange(min=1), default=8.0, show_default=True,
              help="singles-day: reads at T0 after the refresh storm, ×B")
@click.option("--peak", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="singles-day: write peak P, ×B")
@click.option("--ramp", type=DURATION, default="30s", show_default=True,
              help="singles-day: writes reach P this long after T0")
@click.option("--hold", type=DURATION, default="2m", show_default=True,
              help="singles-day: how long writes hold P")
@click.option("--half-life", type=DURATION, default="12.5m", show_default=True,
              help="singles-day: decay half-life (10-15 min)")
@click.option("--before", type=DURATION, default="15m", show_default=True,
              help="singles-day: trace starts this long before T0")
@click.option("--after", type=DURATION, default="30m", show_default=True,
              help="singles-day: trace ends this long after T0")
@click.option("--duration", type=POSITIVE_DURATION, default=None,
              help="steady/diurnal: length (default 10 min steady, 24 h diurnal)")
@click.option("--amplitude", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="diurnal: swing around B")
@click.option("--peak-hour", type=click.FloatRange(0, 24), default=21.0, show_default=True,
              help="diurnal: busiest local hour")
@click.option("--start-hour", type=click.FloatRange(0, 24), default=0.0, show_default=True,
              help="diurnal: local hour at the start of the trace")
@click.option("--compress", "compression", type=click.FloatRange(min=1), default=1.0,
              show_default=True, help="time compression: every duration ÷ this, rates kept")
@click.option("--players", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--game", default=None, help="game id in the paths (default: the config's "
              "file name, else squirrel-omg)")
@click.option("--game-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="game-config JSON to take species, foods, box series and tasks from")
@click.option("--species", multiple=True, help="species to adopt (repeatable)")
@click.option("--food", multiple=True, help="foods to feed (repeatable)")
@click.option("--series", multiple=True, help="box series to draw from (repeatable)")
@click.option("--task", multiple=True, help="task ids (repeatable)")
@click.option("--hot-prize", default=None,
              help="a limited prize (in --game-config) that draws crowd towards")
@click.option("--hot-series", default=None, help="the box series of the hot prize, directly")
@click.option("--hot-share", type=click.FloatRange(0.3, 0.5), default=0.4, show_default=True,
              help="share of draws sent at the hot prize")
@click.option("--ops", default=None,
              help="comma-separated operationIds the model may emit ('served': what every "
              "server answers; default all)")
def generate(output: Path, shape: str, game: str | None, game_config: Path | None,
             players: int, seed: int, ops: str | None, **kw: Any) -> None:
    """Write a synthetic trace: a traffic SHAPE realised by the player-behaviour model."""
    from loadtests.generate import Generator, generate_trace
    from loadtests.model import Behaviour, PlayerModel

    shape_obj = _shape(shape, kw)
    profile = _profile(game, game_config, kw)
    behaviour = Behaviour(hot_share=kw["hot_share"], ops=_ops(ops))
    gen = Generator(shape_obj, PlayerModel(profile, behaviour, shape_obj.compression),
                    players=players, seed=seed)
    try:
        stats = generate_trace(output, gen)
    except OSError as exc:  # no such folder, no permission, a full disk
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(json.dumps({"trace": str(output), **stats.to_json()}, indent=2))


def _shape(name: str, kw: dict[str, Any]) -> Any:
    from loadtests.shapes import make_shape

    common = {"baseline": kw["baseline"], "read_share": kw["read_share"],
              "compression": kw["compression"]}
    if name == "singles-day":
        if not 600 <= kw["half_life"] <= 900:
            raise click.BadParameter("the half-life is 10-15 min", param_hint="--half-life")
        params = {**common, "read_boost": kw["read_boost"], "storm": kw["storm"],
                  "peak": kw["peak"], "ramp_s": kw["ramp"], "hold_s": kw["hold"],
                  "half_life_s": kw["half_life"], "before_s": kw["before"],
                  "after_s": kw["after"]}
    elif name == "diurnal":
        params = {**common, "amplitude": kw["amplitude"], "peak_hour": kw["peak_hour"],
                  "start_hour": kw["start_hour"], "duration_s": kw["duration"] or 86_400.0}
    else:
        params = {**common, "duration_s": kw["duration"] or 600.0}
    try:
        return make_shape(name, **params)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _profile(game: str | None, config_file: Path | None, kw: dict[str, Any]) -> Any:
    from dataclasses import replace

    from loadtests.model import GameProfile

    try:
        if config_file is not None:
            config = json.loads(config_file.read_text())
            if not isinstance(config, dict):
                raise ValueError(f"{config_file} is not a game config (a JSON object)")
            profile = GameProfile.from_config(game or config_file.stem, config, kw["hot_prize"])
        elif kw["hot_prize"]:
            raise click.BadParameter("--hot-prize needs --game-config (or use --hot-series)")
        else:
            profile = GameProfile(game=game or GameProfile.game)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--game-config") from exc
    except (TypeError, AttributeError, KeyError) as exc:
        # A JSON object whose parts have the wrong shapes (what `petbox game publish`
        # would refuse): one line naming the file, not a traceback.
        raise click.BadParameter(f"{config_file} is not a valid game config "
                                 f"({type(exc).__name__}: {exc})",
                                 param_hint="--game-config") from exc
    names = (("species", "species"), ("foods", "food"), ("series", "series"), ("tasks", "task"))
    overrides: dict[str, Any] = {k: tuple(kw[src]) for k, src in names if kw[src]}
    if kw["hot_series"]:
        overrides["hot_series"] = kw["hot_series"]
        if kw["hot_series"] not in (overrides.get("series") or profile.series):
            overrides["series"] = (*profile.series, kw["hot_series"])
    return replace(profile, **overrides)


# -- inspect ----------------------------------------------------------------------------------


@loadtest.command()
@click.argument("traces", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def inspect(traces: tuple[Path, ...]) -> None:
    """Print a trace's header, its operations and its busiest second."""
    from collections import Counter

    from loadtests.trace import TraceFormatError, read_trace

    def incomplete(note: str) -> None:
        click.echo(f"warning: {note}", err=True)

    try:
        header, records = read_trace(traces, incomplete)
        by_op: Counter[str] = Counter()
        per_s: Counter[int] = Counter()
        last = 0
        for rec in records:
            by_op[rec.op] += 1
            per_s[rec.t_ms // 1000] += 1
            last = rec.t_ms
    except TraceFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    busiest = per_s.most_common(1)[0] if per_s else (0, 0)
    click.echo(json.dumps({"header": header.pack(), "records": sum(by_op.values()),
                           "duration_s": last / 1000, "by_op": dict(by_op.most_common()),
                           "busiest_second": {"t_s": busiest[0], "requests": busiest[1]}},
                          indent=2, default=str))


# -- replay -----------------------------------------------------------------------------------


def _credentials(path: Path | None, merchant: str | None,
                 secret: str | None) -> tuple[str, str]:
    if path is not None:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise click.BadParameter(f"cannot read {path}: {exc}",
                                     param_hint="--credentials") from exc
        if not isinstance(data, dict):
            raise click.BadParameter(f"{path} is not a JSON object (merchant, signing_secret)",
                                     param_hint="--credentials")
        merchant = merchant or data.get("merchant")
        secret = secret or data.get("signing_secret")
    if not merchant or not secret:
        raise click.UsageError("a load-test merchant is needed: --credentials FILE (the JSON of "
                               "`petbox merchant create --load-test --json`) or --merchant "
                               "and --signing-secret")
    return merchant, secret


@loadtest.command()
@click.argument("traces", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", "base_url", default="http://127.0.0.1:8080", show_default=True,
              help="base URL of the deployment; nothing else is ever contacted")
@click.option("--credentials", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="load-test merchant credentials JSON (merchant, signing_secret)")
@click.option("--merchant", default=None, help="load-test merchant id")
@click.option("--signing-secret", envvar="PETBOX_LOADTEST_SIGNING_SECRET", default=None,
              help="its signing secret (or PETBOX_LOADTEST_SIGNING_SECRET)")
@click.option("--game", default=None, help="game id to use in every path (overrides the trace)")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="worker processes")
@click.option("--speed", type=click.FloatRange(min=0.001), default=1.0, show_default=True,
              help="play the trace this many times faster")
@click.option("--max-duration", type=POSITIVE_DURATION, default=None, help="stop after this long")
@click.option("--ops", default=None, help="only these operationIds (comma-separated; 'served' "
              "for what every server answers); the rest are skipped")
@click.option("--shadow", is_flag=True, hidden=True,
              help="the default: load-test sessions on shadow data (kept for old scripts)")
@click.option("--real-data", is_flag=True,
              help="write the merchant's REAL data (a load-test merchant only; asks to type "
              "its id unless --yes)")
@click.option("--yes", is_flag=True, help="with --real-data: do not ask")
@click.option("--clones", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="replay each trace player this many times (new shadow identities)")
@click.option("--shard", default="0/1", show_default=True,
              help="I/N: this generator replays its share of players (distributed runs)")
@click.option("--start-at", type=float, default=None,
              help="unix time to start at (generators of one distributed run start together)")
@click.option("--samples", "samples_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="also write every latency (op µs per line) into this "
              "directory, to check the histograms against")
@click.option("--timeout", type=POSITIVE_DURATION, default="10s", show_default=True,
              help="per-request timeout")
@click.option("--max-in-flight", type=click.IntRange(min=1), default=5000, show_default=True,
              help="per worker; beyond it a request is counted as client_backlog")
@click.option("--connections", type=click.IntRange(min=1), default=256, show_default=True,
              help="keep-alive connections per worker")
@click.option("--player-prefix", default=None,
              help="prefix of user ids (default lt<run id>-: fresh players every run)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="directory for results.json, summary.json and report.html "
              "(default loadtest-<run id>)")
@click.option("--slo", multiple=True, help=SLO_HELP)
@click.option("--progress/--no-progress", default=None,
              help="live progress bar (default: when stderr is a terminal)")
@click.option("--premint", is_flag=True,
              help="open every player's session before the clock starts (not measured)")
@click.option("--allow-remote", is_flag=True,
              help="allow a non-loopback target (a deliberate production rehearsal)")
@_verdict_options
def replay(traces: tuple[Path, ...], base_url: str, credentials: Path | None,
           merchant: str | None, signing_secret: str | None, game: str | None, workers: int,
           speed: float, max_duration: float | None, ops: str | None, shadow: bool,
           real_data: bool, yes: bool, clones: int, shard: str, start_at: float | None,
           samples_dir: Path | None,
           timeout: float, max_in_flight: int, connections: int, player_prefix: str | None,
           out_dir: Path | None, slo: tuple[str, ...], progress: bool | None, premint: bool,
           allow_remote: bool, **verdict_kw: Any) -> None:
    """Replay TRACES against --target (shadow data), then report, judge and gate the run."""
    from loadtests.replay import ReplayConfig, ReplayError, TracePlan, probe_merchant
    from loadtests.replay import replay as run_replay
    from loadtests.trace import TraceFormatError

    gates = _gates(slo)
    limits = _limits(verdict_kw)
    merchant, secret = _credentials(credentials, merchant, signing_secret)
    if real_data and shadow:
        raise click.UsageError("--real-data and --shadow contradict each other")
    if real_data and clones > 1:
        raise click.UsageError("--clones makes new identities: shadow data only")
    index, count = _shard(shard)
    cfg = ReplayConfig(traces=tuple(str(t) for t in traces), base_url=base_url,
                       merchant=merchant, signing_secret=secret, game=game, workers=workers,
                       speed=speed, max_duration=max_duration, ops=_ops(ops),
                       shadow=not real_data, timeout=timeout, max_in_flight=max_in_flight,
                       connections=connections, player_prefix=player_prefix,
                       allow_remote=allow_remote, premint=premint, clones=clones,
                       shard=index, shards=count, start_at=start_at,
                       samples_dir=str(samples_dir) if samples_dir else None)
    out = out_dir or Path(f"loadtest-{cfg.run_id}")
    _fresh_dir(out)  # before anything is sent: a run's results must have somewhere to go
    if samples_dir:
        samples_dir.mkdir(parents=True, exist_ok=True)
    try:
        probe_merchant(cfg)  # refused unless the merchant is marked for load tests
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    if real_data and not yes:
        click.confirm(f"This replay writes REAL data of merchant {merchant!r} at {base_url} "
                      "(players, ledgers, analytics). Continue?", abort=True, err=True)
        typed = click.prompt("type the merchant id to confirm", err=True)
        if typed != merchant:
            raise click.UsageError("the merchant id typed does not match: nothing was sent")

    def announce(plan: TracePlan) -> None:
        for note in plan.incomplete:
            click.echo(f"warning: {note}", err=True)
        click.echo(f"replaying {plan.records:,} requests over {plan.last_t_ms / 1000 / speed:,.1f}"
                   f" s against {base_url} with {workers} worker(s), run {cfg.run_id}", err=True)

    try:
        result = run_replay(cfg, progress=sys.stderr.isatty() if progress is None else progress,
                            on_plan=announce)
    except (ReplayError, TraceFormatError) as exc:
        raise click.ClickException(str(exc)) from exc
    if _taken(out):  # another run wrote there meanwhile: keep this one's results too
        fallback = Path(f"loadtest-{cfg.run_id}")
        click.echo(f"warning: {out} was filled during the run; writing to {fallback}", err=True)
        out = fallback
    _finish(result, out, gates, limits, save=True)


def _shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if m is None or not 0 <= int(m[1]) < int(m[2]):
        raise click.BadParameter("want I/N with 0 <= I < N, e.g. 0/2", param_hint="--shard")
    return int(m[1]), int(m[2])


def _taken(out: Path) -> list[str]:
    """The report files ``out`` already holds."""
    return [n for n in ("results.json", "summary.json", "report.html") if (out / n).exists()]


def _fresh_dir(out: Path) -> None:
    """Reports never overwrite another run's files."""
    taken = _taken(out)
    if taken:
        raise click.UsageError(f"{out} already holds {', '.join(taken)}: choose another --out")


def _finish(result: Any, out_dir: Path, gates: list[Any], limits: Any, save: bool) -> None:
    from loadtests.replay import save_results
    from loadtests.report import login_line, summarize, write_reports
    from loadtests.verdict import judge

    summary = summarize(result)
    verdicts = evaluate(summary, gates)
    run = judge(summary, verdicts, limits)
    out_dir.mkdir(parents=True, exist_ok=True)
    if save:
        save_results(result, out_dir / "results.json")
    paths = write_reports(result, out_dir, run, summary)
    lat, late = summary["latency_ms"], summary["send_lateness_ms"]
    off, ach, cls = summary["offered"], summary["achieved"], summary["classes"]
    click.echo(f"{summary['requests']:,} requests in {summary['elapsed_s']:.1f} s; offered "
               f"{off['rps'] or 0:,.1f}/s, achieved {ach['rps'] or 0:,.1f}/s; latency p50 "
               f"{lat['p50']} p99 {lat['p99']} p999 {lat['p999']} ms; send lateness p99 "
               f"{late['p99']} ms")
    click.echo("  " + ", ".join(f"{k} {v:,}" for k, v in cls.items()))
    click.echo(f"  logins by the replay: {login_line(summary)}")
    for code, n in list(summary["errors_by_code"].items())[:10]:
        click.echo(f"  {n:>8,}  {code}")
    click.echo(f"report: {paths['html']}  summary: {paths['summary']}")
    for v in verdicts:
        click.echo(v.describe())
    click.echo(run.line())
    if run.exit_code:
        sys.exit(run.exit_code)


# -- report -----------------------------------------------------------------------------------


@loadtest.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where to write summary.json and report.html (default: a new "
              "report-<time> directory beside RESULTS; the run's own files are kept)")
@click.option("--slo", multiple=True, help=SLO_HELP)
@_verdict_options
def report(results: Path, out_dir: Path | None, slo: tuple[str, ...], **verdict_kw: Any) -> None:
    """Rebuild the reports of a replay from its results.json, judge and gate it again."""
    import time

    from loadtests.replay import ReplayError, load_results

    gates = _gates(slo)
    limits = _limits(verdict_kw)
    try:
        result = load_results(results)
    except (ReplayError, ValueError, KeyError) as exc:
        raise click.ClickException(f"{results}: {exc}") from exc
    out = out_dir or _new_report_dir(results.parent, time.strftime("report-%Y%m%d-%H%M%S"))
    _fresh_dir(out)
    _finish(result, out, gates, limits, save=False)


def _new_report_dir(parent: Path, stem: str) -> Path:
    """A report directory no earlier report took: two reports in one second get -2, -3 ..."""
    candidate, n = parent / stem, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{stem}-{n}"
    return candidate


@loadtest.command()
@click.argument("results", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="directory for the merged results.json and reports")
@click.option("--slo", multiple=True, help=SLO_HELP)
@_verdict_options
def merge(results: tuple[Path, ...], out_dir: Path, slo: tuple[str, ...],
          **verdict_kw: Any) -> None:
    """Merge the results.json of several generators (``replay --shard I/N``) into one run."""
    from loadtests.replay import ReplayError, load_results, merge_results

    gates = _gates(slo)
    limits = _limits(verdict_kw)
    try:
        merged = merge_results([load_results(r) for r in results])
    except (ReplayError, ValueError, KeyError) as exc:
        raise click.ClickException(str(exc)) from exc
    _fresh_dir(out_dir)
    _finish(merged, out_dir, gates, limits, save=True)
