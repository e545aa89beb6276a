"""A database or Redis out of reach, or a port already taken: every command says so in
one ``Error:`` line and exits 1, never with a Python traceback.

Nothing listens on port 1 of the loopback: connecting there is refused at once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gameserver.cli.main import main

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


def test_serve_on_a_taken_port_is_one_line(tmp_path: Path, redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = petbox(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port),
                        PETBOX_REDIS_URL=redis_url)
    one_line_error(result, f"cannot serve on 127.0.0.1:{port}: ")


def _redis_servers_in(root: Path) -> list[int]:
    """Pids of the redis-server processes working in a folder below ``root`` (a
    redis-server changes into its ``--dir``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "comm").read_text().strip() == "redis-server" and \
                    (proc / "cwd").resolve().is_relative_to(root.resolve()):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue  # gone meanwhile, not ours to read, or not a process
    return pids


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc")
def test_serve_stops_its_embedded_redis_when_sql_is_out_of_reach(tmp_path: Path) -> None:
    """The embedded redis-server was started, then SQL failed and it kept running."""
    result = petbox(tmp_path, "serve", "--port", "0", PETBOX_DATABASE_URL=NO_SQL)
    one_line_error(result, "cannot reach the database")
    assert "embedded redis-server on" in result.output  # it was started
    assert _redis_servers_in(tmp_path) == []
