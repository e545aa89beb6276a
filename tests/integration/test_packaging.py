"""The wheel a deployment installs (``pip install .``) holds every package and data file
of the checkout, not only what an editable install happens to find."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gameserver", "mechanics", "economy", "loadtests", "migrations")


def _source_files() -> set[str]:
    """Every module of the shipped packages, and the server's Lua, console and example
    game files."""
    found: set[str] = set()
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if "__pycache__" in rel or not path.is_file():
                continue
            if (path.suffix in (".py", ".lua") or "/static/" in rel
                    or rel.startswith("gameserver/examples/")):
                found.add(rel)
    return found


def _copy_of_the_checkout(to: Path) -> Path:
    """The packages and the project files alone: setuptools builds in the source folder,
    and a ``build/`` left there by an earlier build would be packed into the wheel."""
    src = to / "src"
    for top in PACKAGES:
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    return src


def test_the_wheel_holds_every_module_and_data_file(tmp_path: Path) -> None:
    src = _copy_of_the_checkout(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("petbox-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = _source_files()
    assert "gameserver/persister/flush.py" in expected
    # what `petbox demo` publishes: a demo from an installed wheel needs them
    assert {"gameserver/examples/squirrel-omg.json",
            "gameserver/examples/double11.json"} <= expected
    assert sorted(expected - shipped) == []

    # The demo reads its games from the package it was imported from (here the wheel,
    # imported as a zip from outside the checkout), never from a checkout beside it.
    read = subprocess.run(
        [sys.executable, "-c", DEMO_GAMES], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(wheel)}, timeout=60)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == {
        "package": str(wheel / "gameserver"),
        "games": [json.loads((ROOT / "gameserver" / "examples" / name).read_text())
                  for name in ("squirrel-omg.json", "double11.json")]}


DEMO_GAMES = """
import json, gameserver
from gameserver.cli.demo import DEMO_GAME_FILE, DOUBLE11_FILE
from gameserver.ops.provision import load_config_file
print(json.dumps({"package": gameserver.__path__[0],
                  "games": [load_config_file(f) for f in (DEMO_GAME_FILE, DOUBLE11_FILE)]}))
"""
