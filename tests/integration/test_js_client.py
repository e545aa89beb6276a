"""The mini-program client's own tests (``clients/js/test``, Node's test runner) against
a real ``petbox serve`` (embedded Redis, SQLite) with the example game live.

Node 18+ is needed (the CI machine has Node 20); the server is a subprocess of this
test, so the JS tests see exactly what a mini-program would. The client's response
types (``clients/js/openapi-types.d.mts``) are generated from the server's
``/openapi.json`` and type-checked with TypeScript (``npm ci`` in clients/js)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gameserver.db.database import Database
from gameserver.ops.provision import create_merchant, publish_config
from tests.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
GAME = "squirrel-omg"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _provision(data: Path) -> str:
    """Merchant jsshop with the example game live (and a flash sale on), in the data
    dir's SQLite; its secret."""
    db = Database(f"sqlite+aiosqlite:///{data / 'petbox.db'}")
    try:
        await db.migrate()
        creds = await create_merchant(db, "jsshop", int(time.time()))
        config = json.loads((ROOT / "gameserver" / "examples" / "squirrel-omg.json").read_text())
        config["flashsales"] = {"midnight": {  # on sale since a minute ago
            "title": "Midnight nuts", "sku": "NUTS-11", "price_fen": 990,
            "starts_at": int(time.time()) - 60, "stock": 5, "per_shopper": 1,
            "pay_seconds": 600}}
        await publish_config(db, "jsshop", GAME, config, int(time.time()))
        return str(creds.signing_secret)
    finally:
        await db.close()


@dataclass
class Served:
    base: str
    secret: str
    env: dict[str, str]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (18+) is needed for the mini-program client's tests")
    return node


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``petbox serve`` (embedded Redis, SQLite) with merchant jsshop's example game live."""
    tmp = tmp_path_factory.mktemp("js")
    data = tmp / "data"
    data.mkdir()
    secret = asyncio.run(_provision(data))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETBOX_")}
    env.update(PETBOX_DATA_DIR=str(data), PETBOX_ACCESS_LOG="0", PETBOX_RUN_BACKGROUND="0")
    log = tmp / "serve.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "gameserver.cli", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server, log.read_text, timeout=60)
        yield Served(base, secret, env)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_js_client_against_a_real_server(served: Served) -> None:
    done = subprocess.run(
        [_node(), "--test", str(JS / "test")], cwd=ROOT,
        env={**served.env, "PETBOX_URL": served.base, "PETBOX_MERCHANT": "jsshop",
             "PETBOX_SECRET": served.secret, "PETBOX_GAME": GAME},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout and "# pass 11" in done.stdout, done.stdout


def _generate(doc: dict[str, Any], tmp: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    src, out = tmp / "openapi.json", tmp / "openapi-types.d.mts"
    src.write_text(json.dumps(doc))
    done = subprocess.run([_node(), str(JS / "scripts" / "gen-types.mjs"), str(src), str(out)],
                          capture_output=True, text=True, timeout=60)
    return done, out


def test_js_types_are_generated_from_the_served_document(served: Served,
                                                         tmp_path: Path) -> None:
    """The checked-in response types are what /openapi.json generates, they type-check
    with the client's declarations and a typed use of it, and a document that lost a
    response schema generates nothing: the type check fails, naming the operation."""
    with urllib.request.urlopen(f"{served.base}/openapi.json", timeout=10) as resp:
        doc = json.load(resp)
    done, out = _generate(doc, tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (JS / "openapi-types.d.mts").read_text(), (
        "clients/js/openapi-types.d.mts is stale: run `npm run types` in clients/js "
        "against a running server's /openapi.json")

    tsc = JS / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "run `npm ci` in clients/js (.ci/run and dev.py do)"
    checked = subprocess.run([str(tsc), "-p", str(JS)], capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    lost = copy.deepcopy(doc)
    del lost["paths"]["/v1/games/{game}/pet/feed"]["post"]["responses"]["200"]["content"]
    broken = tmp_path / "broken"
    broken.mkdir()
    refused, out = _generate(lost, broken)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "openapi-types: 1 operation(s) without a response schema:",
        "  feedPet (POST /v1/games/{game}/pet/feed): success response 200 has no "
        "response schema"]
    assert not out.exists()
