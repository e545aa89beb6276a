"""The later plays under load: presales, free samples (派样) and teams, against a real
``petbox serve``; and recorded reads of a group or team by its id in the path, replayed
on a fresh server (the ids a recorded reply handed back are swapped for the replay's).

Servers run as processes on embedded Redis and SQLite in temporary data directories;
the load tester knows only their URLs and a load-test merchant's credentials.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from loadtests.cli import loadtest
from loadtests.model import ref
from loadtests.trace import Header, Record, read_trace, write_trace
from tests.integration.test_process import GAME_FILE, Server
from tests.loadtests.conftest import serve_loadshop, server_env
from tests.loadtests.test_end_to_end import SHARED_BOX, generate_steady

pytestmark = pytest.mark.slow
GATES = ("--slo", "unexpected=0", "--slo", "5xx=0", "--slo", "timeouts=0",
         "--slo", "transport=0")
TINY = (*SHARED_BOX, "--workers", "1", "--allow-generator-bound")
"""A 13-request replay lasts 2 s, most of it the worker's start-up: its generator CPU
share says nothing (this test is about what was answered)."""


def later_plays_game(now: int) -> dict[str, Any]:
    """The example game plus double11's presale (with a deposit), first-come sample
    campaign (members who followed the shop), team season and group buy, all open now.
    A team's first milestone is one friend's check-in away, so members can claim it."""
    d11 = json.loads((GAME_FILE.parent / "double11.json").read_text())
    config: dict[str, Any] = json.loads(GAME_FILE.read_text())
    box = d11["presales"]["double11-gift-box"]
    config["presales"] = {"gift-box": {**box, "reserve_from": now - 60,
                                       "reserve_until": now + 3600, "event_at": now + 7200,
                                       "convert_until": now + 10800}}
    trial = d11["samples"]["midnight_trial"]
    config["samples"] = {"trial": {**trial, "opens_at": now - 60, "closes_at": now + 3600}}
    season = d11["teams"]["d11_build"]
    config["teams"] = {"build": {
        **season, "starts_at": now - 60, "ends_at": now + 3600, "min_size": 2,
        "auto_match": False, "points": {"feed": 1, "checkin": 5, "order": 50},
        "milestones": {"floor_5": {"points": 5, "reward": {"currency": {"acorn": 50}}}}}}
    config["groupbuys"] = {"d11_tea_trio": d11["groupbuys"]["d11_tea_trio"]}
    return config


def _env(tmp: Path, name: str) -> dict[str, str]:
    return server_env(tmp / name, "loadtest-later-secret-123")


def _start(env: dict[str, str], tmp: Path, game: Path) -> tuple[Server, Path]:
    """A server with the load-test merchant ``loadshop`` and the game ``later``."""
    cred_file = tmp / f"creds-{Path(env['PETBOX_DATA_DIR']).name}.json"
    return serve_loadshop(env, "later", game, cred_file), cred_file


@pytest.fixture
def game_file(tmp_path: Path) -> Path:
    path = tmp_path / "later.json"
    path.write_text(json.dumps(later_plays_game(int(time.time()))))
    return path


@pytest.fixture
def served(tmp_path: Path, game_file: Path) -> Iterator[tuple[Server, Path]]:
    server, creds = _start(_env(tmp_path, "data"), tmp_path, game_file)
    yield server, creds
    server.terminate()


def test_model_plays_presales_samples_and_teams(served: tuple[Server, Path],
                                                 game_file: Path, tmp_path: Path) -> None:
    """Generated shoppers reserve presales and pay the deposit, follow the shop and apply
    for a first-come sample and review it, open teams that friends join with the code
    handed back, look at by its id, and claim the milestone: nothing is refused and
    every chained request goes out."""
    server, creds = served
    trace, out = tmp_path / "later.pbt", tmp_path / "report"
    runner = CliRunner()
    # 12 s: a team's look and claim come seconds (real time) after its friends join, so
    # only sessions starting early in the trace get there (each play twice with seed 8).
    by_op = generate_steady(runner, trace, game_file, 30, "120s", 150, 8)["by_op"]
    plays = ("getPresale", "reservePresale", "ingestOrder", "getSampleCampaign",
             "applySample", "listMySamples", "reviewSample", "createTeam", "joinTeam",
             "getTeam", "claimTeamRewards")
    assert all(by_op.get(op, 0) > 0 for op in plays), by_op
    run = runner.invoke(loadtest, [
        "replay", str(trace), "--target", server.base, "--credentials", str(creds),
        "--out", str(out), "--no-progress", *SHARED_BOX, *GATES, "--slo", "refusals=0"])
    assert run.exit_code == 0, run.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 0 and summary["unexpected"] == 0, summary["errors_by_code"]
    assert summary["skipped"] == 0  # every reservation, win and milestone came
    ops = summary["operations"]
    for op in plays:
        assert ops[op]["codes"] == {"200": by_op[op]}, (op, ops[op])


def _share_session(offer: str, season: str) -> list[Record]:
    """An opener and two friends: a group one friend joins, reads by its id and leaves;
    a team a friend joins by code and both read by its id (the ids come from replies)."""
    group, team = ref(f"group:{offer}"), ref(f"team:{season}", "team")
    steps = [
        ("o", "createSession", {}, None), ("o", "getPlayer", None, None),
        ("o", "createGroupBuy", {}, {"offer": offer}),
        ("o+a", "createSession", {}, None),
        ("o+a", "joinGroupBuy", {"code": ref(f"group:{offer}")}, {"offer": offer}),
        ("o+a", "getGroupBuy", None, {"offer": offer, "group": group}),
        ("o+a", "leaveGroupBuy", {}, {"offer": offer, "group": group}),
        ("o", "getGroupBuy", None, {"offer": offer, "group": group}),
        ("o", "createTeam", {}, {"season": season}),
        ("o+b", "createSession", {}, None),
        ("o+b", "joinTeam", {"code": ref(f"team:{season}", "code")}, {"season": season}),
        ("o+b", "getTeam", None, {"season": season, "team": team}),
        ("o", "getTeam", None, {"season": season, "team": team}),
    ]
    return [Record(i * 150, who, op, body, params)
            for i, (who, op, body, params) in enumerate(steps)]


def test_recorded_reads_by_id_in_the_path_replay_on_a_fresh_server(
        game_file: Path, tmp_path: Path) -> None:
    """A recorded ``getGroupBuy``, ``leaveGroupBuy`` and ``getTeam`` name the group or
    team in the path: the replay sends the id its own reply handed back instead of the
    recorded one (else: 404 on a server that never saw those ids)."""
    env = {**_env(tmp_path, "rec"), "PETBOX_RECORD_DIR": str(tmp_path / "traces"),
           "PETBOX_RECORD_SAMPLE": "1"}
    recorder, creds = _start(env, tmp_path, game_file)
    runner = CliRunner()
    drive = tmp_path / "drive.pbt"
    write_trace(drive, Header.new(defaults={"game": "later"}),
                _share_session("d11_tea_trio", "build"))
    try:
        run = runner.invoke(loadtest, [  # real shopper traffic (shadow is never recorded)
            "replay", str(drive), "--target", recorder.base, "--credentials", str(creds),
            "--real-data", "--yes", "--out", str(tmp_path / "drive"), "--no-progress",
            *TINY, *GATES, "--slo", "refusals=0"])
        assert run.exit_code == 0, run.output
        time.sleep(1.5)  # the recorder flushes every second
    finally:
        recorder.terminate()
    recording = sorted((tmp_path / "traces").iterdir())
    recorded = list(read_trace(recording)[1])
    by_op = {r.op: r for r in recorded}
    gave_group, gave_team = by_op["createGroupBuy"].gave, by_op["createTeam"].gave
    assert gave_group is not None and gave_group["group"] == gave_group["code"]
    assert gave_team is not None and gave_team["code"].startswith(gave_team["team"])
    assert by_op["leaveGroupBuy"].params["group"] == gave_group["group"]  # type: ignore[index]
    assert by_op["getTeam"].params["team"] == gave_team["team"]  # type: ignore[index]
    assert {r.expect for r in recorded} <= {"200", "201"}

    fresh, fresh_creds = _start(_env(tmp_path, "fresh"), tmp_path, game_file)
    try:
        out = tmp_path / "replay"
        run = runner.invoke(loadtest, [
            "replay", *map(str, recording), "--target", fresh.base, "--credentials",
            str(fresh_creds), "--out", str(out), "--no-progress", *TINY, *GATES])
        assert run.exit_code == 0, run.output
    finally:
        fresh.terminate()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 0 and summary["unexpected"] == 0, summary["errors_by_code"]
    ops = summary["operations"]
    assert {op: ops[op]["codes"] for op in ("getGroupBuy", "leaveGroupBuy", "getTeam")} == {
        "getGroupBuy": {"200": 2}, "leaveGroupBuy": {"200": 1}, "getTeam": {"200": 2}}
    assert summary["requests"] == len(recorded)
