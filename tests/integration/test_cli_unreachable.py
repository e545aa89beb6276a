"""A database or Redis out of reach, or a port already taken: every command says so in
one ``Error:`` line and exits 1, never with a Python traceback.

Nothing listens on port 1 of the loopback: connecting there is refused at once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import gameserver.cli as cli
from gameserver.cli import main

SECRET = "a-secret-of-sixteen+"
NO_SQL = "postgresql+asyncpg://petbox@127.0.0.1:1/petbox"
NO_REDIS = "redis://:hunter2secret@127.0.0.1:1/0"


def petbox(tmp_path: Path, *args: str, **env: str) -> Result:
    base = {"PETBOX_DATA_DIR": str(tmp_path / "data"), "PETBOX_TOKEN_SECRET": SECRET}
    return CliRunner().invoke(main, list(args), env={**base, **env})


def one_line_error(result: Result, says: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert says in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [("merchant", "create", "shop"), ("migrate",),
                                  ("game", "versions", "shop", "squirrel")])
def test_a_database_out_of_reach_is_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = petbox(tmp_path, *args, PETBOX_DATABASE_URL=NO_SQL)
    one_line_error(result, f"cannot reach the database {NO_SQL}: ")


def test_a_sqlite_file_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    url = f"sqlite+aiosqlite:///{tmp_path / 'file' / 'sub' / 'petbox.db'}"
    result = petbox(tmp_path, "migrate", PETBOX_DATABASE_URL=url)
    one_line_error(result, "cannot open the database")


@pytest.mark.parametrize("args", [("shadow", "purge", "--yes"), ("persister",)])
def test_redis_out_of_reach_is_one_line_without_its_password(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    result = petbox(tmp_path, *args, PETBOX_REDIS_URL=NO_REDIS)
    one_line_error(result, "cannot reach Redis at redis://:***@127.0.0.1:1/0: ")
    assert "hunter2secret" not in result.output


def test_serve_with_redis_out_of_reach_is_one_line(tmp_path: Path) -> None:
    result = petbox(tmp_path, "serve", "--port", "0", PETBOX_REDIS_URL="redis://127.0.0.1:1/0")
    one_line_error(result, "cannot reach Redis at redis://127.0.0.1:1/0")


def test_serve_on_a_taken_port_is_one_line(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        def bind(*_args: object, **_kwargs: object) -> None:
            with socket.socket() as again:
                again.bind(("127.0.0.1", port))  # what web.run_app meets first

        monkeypatch.setattr(cli, "_serve_one", bind)
        result = petbox(tmp_path, "serve", "--port", str(port),
                        PETBOX_REDIS_URL="redis://127.0.0.1:1/0")
    one_line_error(result, f"cannot serve on 127.0.0.1:{port}: ")


def test_serve_stops_its_embedded_redis_when_sql_is_out_of_reach(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded redis-server was started, then SQL failed and it kept running."""
    events: list[str] = []

    class FakeRedis:
        url = "redis://127.0.0.1:1/0"
        data_dir = tmp_path / "redis"

        def __init__(self, *_args: object, **_kwargs: object) -> None:
            pass

        def start(self) -> None:
            events.append("start")

        def stop(self) -> None:
            events.append("stop")

    monkeypatch.setattr(cli, "RedisProcess", FakeRedis)
    result = petbox(tmp_path, "serve", "--port", "0", PETBOX_DATABASE_URL=NO_SQL)
    one_line_error(result, "cannot reach the database")
    assert events == ["start", "stop"]
