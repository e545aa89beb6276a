"""The docs name things a newcomer copies literally: files, settings, commands and
their options, modules and functions, operations with their paths. Each kind is
checked here against the code, so a rename or a removal that forgets the docs fails
a test naming the doc, its line and the stale reference.

(``tests/loadtests/test_docs.py`` runs docs/loadtesting.md's quick start; this file
only checks that what the docs name exists.)
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import click

from gameserver.app import all_operations
from gameserver.cli.main import main as petbox_cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SETTINGS = ROOT / "gameserver" / "ops" / "settings.py"

PATH_RE = re.compile(
    r"(?<![\w./-])((?:gameserver|mechanics|economy|loadtests|tests|clients|bench|migrations"
    r"|examples)/[\w./-]*\w)")
GENERATED = ("bench/results/",)
"""Where the docs' commands write their output (git-ignored): named, never committed."""


def _lines() -> Iterator[tuple[str, int, str]]:
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            yield doc.relative_to(ROOT).as_posix(), number, line


def _code_lines() -> Iterator[tuple[str, str]]:
    """Every line of the docs' code blocks, continuation lines joined."""
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                yield doc.relative_to(ROOT).as_posix(), line.split(" #")[0].strip()


def test_every_repository_path_named_in_the_docs_exists() -> None:
    missing = [f"{doc}:{n}: {path}" for doc, n, line in _lines()
               for path in PATH_RE.findall(line)
               if not any(c in path for c in "<>*{}") and not path.startswith(GENERATED)
               and not (ROOT / path).exists()]
    assert missing == []


def _settings_read() -> set[str]:
    """The ``PETBOX_*`` variables the settings loader reads."""
    return set(re.findall(r'"(PETBOX_[A-Z0-9_]+)"', SETTINGS.read_text()))


def _readme_table() -> set[str]:
    """The variables named in the first column of README's configuration table."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1]
    section = section.split("\n## ", 1)[0]
    return {name for row in section.splitlines() if row.startswith("| `PETBOX_")
            for name in re.findall(r"`(PETBOX_[A-Z0-9_]+)`", row.split(" | ")[0])}


def test_every_setting_is_in_the_readme_table_and_every_row_is_a_setting() -> None:
    table = _readme_table()
    # Read outside the settings object: where the embedded Redis starts.
    others = {"PETBOX_REDIS_SERVER"}
    assert sorted(_settings_read() - table) == []
    assert sorted(table - _settings_read() - others) == []
    assert others <= table


def _command(words: list[str]) -> tuple[list[str], click.Command] | None:
    """The deepest ``petbox`` command ``words`` name, with the words that name it."""
    command: click.Command = petbox_cli
    used: list[str] = []
    for word in words:
        if not isinstance(command, click.Group) or not re.fullmatch(r"[a-z-]+", word):
            break
        sub = command.commands.get(word)
        if sub is None:
            if not used:  # the first word is the command: an unknown one is stale
                return None
            break
        command, used = sub, [*used, word]
    return used, command


def _options(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def test_every_petbox_command_in_the_docs_exists_with_its_options() -> None:
    stale = []
    for doc, line in _code_lines():
        for segment in re.split(r"&&|;|\||\$\(", line):
            found = re.match(r"\s*(?:[A-Z_]+=\S+\s+)*(?:\S*/)?petbox\s+(.*)", segment)
            if not found:
                continue
            words = found.group(1).split()
            if words[:1] == ["--data-dir"]:
                words = words[2:]
            named = _command(words)
            if named is None:
                stale.append(f"{doc}: no command: {segment.strip()}")
                continue
            used, command = named
            given = re.findall(r"(?<!\S)(--?[A-Za-z][\w-]*)(?=[\s=]|$)", " ".join(words))
            stale += [f"{doc}: petbox {' '.join(used)} has no {opt}: {segment.strip()}"
                      for opt in given if opt not in _options(command)]
    assert stale == []


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_every_dotted_module_name_in_the_docs_resolves() -> None:
    dotted = re.compile(r"(?<![\w/.])((?:gameserver|mechanics|economy|loadtests)\.[A-Za-z_][\w.]*"
                        r"[A-Za-z_])")
    stale = [f"{doc}:{n}: {name}" for doc, n, line in _lines()
             for name in dotted.findall(line) if not _resolves(name)]
    assert stale == []


def _source_text() -> str:
    files = [p for top in ("gameserver", "mechanics", "economy", "loadtests", "tests")
             for p in (ROOT / top).rglob("*") if p.suffix in (".py", ".lua")]
    return "\n".join(p.read_text() for p in files)


def test_code_names_in_the_walkthroughs_exist() -> None:
    """architecture.md and adding-a-mechanic.md name functions and classes to follow:
    each snake_case or CamelCase name they quote is somewhere in the code (or, for a
    test they cite, in the tests)."""
    source = _source_text()
    stale = []
    for name in ("architecture.md", "adding-a-mechanic.md"):
        text = (ROOT / "docs" / name).read_text()
        for quoted in re.findall(r"`([^`\n]+)`", text):
            for word in re.findall(r"[A-Za-z_][\w.]*", quoted):
                last = word.rstrip(".").split(".")[-1]
                code_like = "_" in last.strip("_") or re.fullmatch(r"[A-Z][a-z]+[A-Z]\w*", last)
                if code_like and not re.search(rf"\b{re.escape(last)}\b", source):
                    stale.append(f"docs/{name}: {word}")
    assert sorted(set(stale)) == []


def test_api_tables_name_served_operations_at_their_paths() -> None:
    """Each row of docs/api.md's operation tables names a served operation, with the
    method and path the server routes it at."""
    served = {op.operation_id: (op.method, op.path) for op in all_operations()}
    text = (ROOT / "docs" / "api.md").read_text()
    rows = re.findall(r"^\| `([A-Za-z]+)` \| `([A-Z]+) (/[^`?]+)", text, flags=re.M)
    assert len(rows) > 50
    stale = [f"{op}: {method} {path} (served: {served.get(op)})" for op, method, path in rows
             if served.get(op) != (method, path)]
    assert stale == []
