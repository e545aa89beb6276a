"""Fault 8: schemathesis against ``/openapi.json`` of a real ``petbox serve``: every
operation fuzzed (with a player token), all checks, stateful links where the
document has them: 0 server errors (5xx), 0 responses that break the schema. Needs the
``schemathesis`` CLI (``pip install schemathesis``, pinned in the ``test`` extra).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gameserver.auth import session_signature
from gameserver.embedded import free_port
from tests.reliability.harness import ROOT, ServerProc, base_env, petbox

pytestmark = pytest.mark.slow


def _st() -> str:
    found = shutil.which("st") or str(Path(sys.executable).parent / "st")
    if not Path(found).exists():
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    return found


def test_schemathesis_all_checks(tmp_path: Path) -> None:
    st = _st()
    env = base_env(tmp_path, "", "")
    for name in ("PETBOX_REDIS_URL", "PETBOX_DATABASE_URL"):
        env.pop(name)  # embedded Redis and SQLite in the data dir
    creds = json.loads(petbox(env, "merchant", "create", "shop", "--json"))
    petbox(env, "game", "publish", "shop", "squirrel", str(ROOT / "examples/squirrel-omg.json"))
    server = ServerProc(env, free_port(), tmp_path / "server.log")
    server.start()
    try:
        ts = int(time.time())
        body = json.dumps({"merchant": "shop", "user": "st", "ts": ts, "sign": session_signature(
            creds["signing_secret"], "shop", "st", ts)}).encode()
        req = urllib.request.Request(f"{server.base}/v1/sessions", body,
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            token = json.load(resp)["token"]
        out = subprocess.run(
            [st, "run", f"{server.base}/openapi.json", "-H", f"Authorization: Bearer {token}",
             "--checks", "all",
             "--max-examples", "10", "--workers", "1", "--seed", "1"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path)
    finally:
        server.terminate()
    print(out.stdout[-3000:])
    assert out.returncode == 0, out.stdout[-6000:]
