"""The CLI as a new merchant meets it: ``petbox session``, one data directory, a fresh
database, readable errors; and the example game a new shopper starts in.

Each command runs through click in a worker thread (the CLI runs its own event loop)
against the test database or a data directory of its own."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from gameserver.appkeys import SETTINGS
from gameserver.cli.main import main
from gameserver.http.auth import TOKEN_PREFIX
from gameserver.ops.provision import create_merchant
from tests.conftest import World

ROOT = Path(__file__).resolve().parents[2]


async def petbox(env: dict[str, str], *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)


async def test_session_prints_a_login_and_a_token_the_server_accepts(
        world: World, db_url: str, tmp_path: Path) -> None:
    world.clock.set(time.time())  # the command signs with the real clock
    secret = world.client.app[SETTINGS].token_secret
    env = {"PETBOX_DATABASE_URL": db_url, "PETBOX_DATA_DIR": str(tmp_path / "data"),
           "PETBOX_TOKEN_SECRET": secret}
    out = await petbox(env, "session", "shop", "alice", "--json")
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert set(body) == {"login", "token", "expires_at"}
    me = await world.get("/v1/games/squirrel/me", body["token"])
    assert me.status == 200
    session = await world.client.post("/v1/sessions", json=body["login"])
    assert session.status == 201, await session.text()
    token_only = await petbox(env, "session", "shop", "alice", "--token-only")
    assert token_only.stdout.count("\n") == 1
    assert (await world.get("/v1/games/squirrel/me", token_only.stdout.strip())).status == 200
    nobody = await petbox(env, "session", "ghost", "alice")
    assert nobody.exit_code == 1 and "no merchant 'ghost'" in nobody.output


async def test_a_fresh_database_says_run_migrate(tmp_path: Path) -> None:
    env = {"PETBOX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}",
           "PETBOX_DATA_DIR": str(tmp_path / "data")}
    out = await petbox(env, "merchant", "create", "shop")
    assert out.exit_code == 1
    assert "has no petbox schema yet: run `petbox migrate` first" in out.output
    assert "Traceback" not in out.output and "no such table" not in out.output
    migrated = await petbox(env, "migrate")
    assert migrated.exit_code == 0, migrated.output
    assert (await petbox(env, "merchant", "create", "shop")).exit_code == 0


async def test_one_data_directory_named_and_stated(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    env = {"PETBOX_DATA_DIR": str(tmp_path / "ignored")}
    made = await petbox(env, "--data-dir", str(data), "merchant", "create", "m1", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["merchant"] == "m1"  # stdout stays pure JSON
    assert f"petbox data directory: {data.resolve()}" in made.stderr
    assert (data / "petbox.db").exists() and not (tmp_path / "ignored" / "petbox.db").exists()
    by_env = await petbox({"PETBOX_DATA_DIR": str(data)}, "session", "m1", "u1",
                          "--token-only")
    assert by_env.exit_code == 0, by_env.output  # the same merchant, found by the env
    assert f"petbox data directory: {data.resolve()}" in by_env.stderr


async def test_cli_errors_are_lines_not_json_blobs(tmp_path: Path) -> None:
    bad = json.loads((ROOT / "gameserver" / "examples" / "squirrel-omg.json").read_text())
    bad["foods"]["acorn_snack"]["price"] = {"gold": 1}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    out = await petbox({"PETBOX_DATA_DIR": str(tmp_path / "data")}, "game", "validate",
                       str(path))
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert lines[0].startswith("Error: game config has")
    assert any(line.startswith("  $.foods.acorn_snack.price.gold: ") for line in lines)
    assert "{" not in out.output and '"problems"' not in out.output


async def test_help_lists_every_command_and_json_flags_say_what_they_print() -> None:
    out = await petbox({}, "--help")
    for command in ("serve", "demo", "migrate", "merchant", "session", "game", "analytics",
                    "export", "simulate", "verify-draw", "shadow", "loadtest", "erase-player"):
        assert f"  {command} " in out.output or f"  {command}\n" in out.output, command
    for args in (["merchant", "create"], ["session"], ["game", "versions"], ["game", "diff"],
                 ["simulate"], ["analytics"], ["erase-player"]):
        text = (await petbox({}, *args, "--help")).output
        json_line = text[text.index("--json"):].split("\n  -")[0]
        assert len(json_line.split()) > 1, (args, json_line)  # a help text, not bare


async def test_a_new_shopper_can_try_a_ten_draw_on_day_one(
        client: Any, db: Any, clock: Any, example_config: dict[str, Any]) -> None:
    """The example game gave 200 acorns and a 10-draw costs 500: it was a 409."""
    world = World(client, db, clock, example_config)
    await world.merchant("shop", game="squirrel-omg")
    token = await world.token("newcomer")
    game = "/v1/games/squirrel-omg"
    assert (await world.post(f"{game}/pet", token, {"species": "squirrel", "name": "N"},
                             "a")).status == 201
    assert (await world.post(f"{game}/pet/feed", token, {"food": "acorn_snack"},
                             "f")).status == 200
    assert (await world.post(f"{game}/checkin", token, {}, "c")).status == 200
    ten = await world.post(f"{game}/boxes/forest_friends/draw", token, {"count": 10}, "t")
    assert ten.status == 200, await ten.text()
    assert len((await ten.json())["draws"]) == 10


async def test_merchant_create_twice_is_a_clean_error(tmp_path: Path, db: Any,
                                                       db_url: str) -> None:
    await create_merchant(db, "shop", 1_767_225_600)
    out = await petbox({"PETBOX_DATABASE_URL": db_url, "PETBOX_DATA_DIR": str(tmp_path)},
                       "merchant", "create", "shop")
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert out.output.startswith("Error: ")


async def test_the_demo_prints_a_command_that_keeps_working(tmp_path: Path) -> None:
    """It printed a login signed at start-up: 10 minutes later, a KeyError 'token'."""
    import shlex

    from gameserver.cli.demo import demo_banner

    data = tmp_path / "demo data"  # a space: the printed command must quote it
    before = os.environ.get("PETBOX_DATA_DIR")
    made = await petbox({}, "--data-dir", str(data), "merchant", "create", "demo", "--json")
    creds = json.loads(made.stdout)
    assert os.environ.get("PETBOX_DATA_DIR") == before  # --data-dir leaves the env alone
    banner = demo_banner(creds, "127.0.0.1", 8080, data)
    assert '"sign"' not in banner and "valid for 10 minutes" not in banner
    line = next(x for x in banner.splitlines() if x.strip().startswith("TOKEN=$("))
    command = shlex.split(line.strip()[len("TOKEN=$("):-1])
    program = 1 if command[0] == "petbox" else 3  # else: <python> -m gameserver.cli
    assert command[program:program + 2] == ["--data-dir", str(data.resolve())]
    out = await petbox({}, *command[program:])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith(TOKEN_PREFIX) and out.stdout.count("\n") == 1


async def test_the_demo_serves_double11_with_its_midnight_tonight(db: Any) -> None:
    """The demo publishes gameserver/examples/double11.json (every play) beside the squirrel game,
    its instants moved so that its midnight is the coming one: once a night, not on
    every start."""
    from gameserver.cli.demo import (
        DOUBLE11_FILE,
        DOUBLE11_GAME,
        DOUBLE11_MIDNIGHT,
        demo_setup,
        next_midnight,
    )

    creds = await demo_setup(db, None)
    live = await db.live_version(creds["merchant"], DOUBLE11_GAME)
    served = (await db.game_version(creds["merchant"], DOUBLE11_GAME, live)).config
    example = json.loads(DOUBLE11_FILE.read_text())
    offset = next_midnight(int(time.time())) - DOUBLE11_MIDNIGHT
    assert offset % 86_400 == 0 and offset > 0
    sale = next(iter(example["flashsales"]))
    assert served["flashsales"][sale]["starts_at"] == (
        example["flashsales"][sale]["starts_at"] + offset)
    assert served["polls"] == {
        p: {**v, "opens_at": v["opens_at"] + offset, "closes_at": v["closes_at"] + offset}
        for p, v in example["polls"].items()}
    assert {"groupbuys", "assists", "teams", "polls", "flashsales", "presales", "rains",
            "samples", "experiments"} <= set(served)
    await demo_setup(db, creds)  # started again the same night: nothing new published
    assert await db.live_version(creds["merchant"], DOUBLE11_GAME) == live
