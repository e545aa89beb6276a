"""The wheel a deployment installs (``pip install .``) holds every package and data file
of the checkout, not only what an editable install happens to find."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gameserver", "mechanics", "economy", "loadtests", "migrations")


def _source_files() -> set[str]:
    """Every module of the shipped packages, and the server's Lua and console files."""
    found: set[str] = set()
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if "__pycache__" in rel or not path.is_file():
                continue
            if path.suffix == ".py" or path.suffix == ".lua" or "/static/" in rel:
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
    assert sorted(expected - shipped) == []
