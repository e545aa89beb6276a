"""Fault 8: schemathesis against the OpenAPI document of a real ``petbox serve``: every
operation fuzzed with the credential it needs (a player token for shopper routes, the
merchant key for ``/v1/admin``), its path ids pinned to the provisioned game so the
requests reach the handlers rather than a 404, and the conformance checks: no 5xx,
every status documented, the documented content type, documented response headers
(``Retry-After`` on 429/503), bodies that match the response schemas the document
states. Bounded (a few examples per operation, fixed seed) so it runs in well under a
minute. Needs the ``schemathesis`` CLI (``st``, pinned in the ``test`` extra).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gameserver.http.auth import session_signature
from gameserver.ops.embedded import free_port
from tests.reliability.harness import ROOT, ServerProc, base_env, petbox

pytestmark = pytest.mark.slow

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")
PINNED = {"game": "squirrel", "series": "forest_friends", "board": "top_squirrels",
          "task": "browse_shop", "prize": "coupon_10off", "user": "st", "version": "1",
          "a": "1", "b": "1"}
"""Path ids of what the test provisions (gameserver/examples/squirrel-omg.json)."""


def _st() -> str:
    found = shutil.which("st") or str(Path(sys.executable).parent / "st")
    if not Path(found).exists():
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    return found


def _pinned(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with each known path id narrowed to the provisioned one."""
    out = copy.deepcopy(doc)
    for ops in out["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] in PINNED:
                    param["schema"] = {"type": "string", "enum": [PINNED[param["name"]]]}
    return out


def _fetch(url: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(url, json.dumps(body).encode() if body else None,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def _start(st: str, doc: Path, base: str, credential: str, scope: str,
           cwd: Path) -> subprocess.Popen[str]:
    """One schemathesis run over the admin routes (``scope="include"``) or the rest."""
    return subprocess.Popen(
        [st, "run", str(doc), "--url", base, "-H", f"Authorization: Bearer {credential}",
         "--checks", CHECKS, f"--{scope}-path-regex", "^/v1/admin/", "--max-examples", "3",
         "--phases", "fuzzing", "--workers", "1", "--seed", "1",
         "--request-timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)


def test_schemathesis_conformance(tmp_path: Path) -> None:
    st = _st()
    env = base_env(tmp_path, "", "")
    for name in ("PETBOX_REDIS_URL", "PETBOX_DATABASE_URL"):
        env.pop(name)  # embedded Redis and SQLite in the data dir
    creds = json.loads(petbox(env, "merchant", "create", "shop", "--json"))
    petbox(env, "game", "publish", "shop", "squirrel",
           str(ROOT / "gameserver" / "examples" / "squirrel-omg.json"))
    server = ServerProc(env, free_port(), tmp_path / "server.log")
    started = time.monotonic()
    server.start()
    try:
        ts = int(time.time())
        token = _fetch(f"{server.base}/v1/sessions", {
            "merchant": "shop", "user": "st", "ts": ts,
            "sign": session_signature(creds["signing_secret"], "shop", "st", ts)})["token"]
        doc = tmp_path / "openapi.json"
        doc.write_text(json.dumps(_pinned(_fetch(f"{server.base}/openapi.json"))))
        # One worker each (two threads in one schemathesis hit a CPython 3.11 ast bug
        # in hypothesis), the two runs side by side.
        runs = [_start(st, doc, server.base, token, "exclude", tmp_path),
                _start(st, doc, server.base, creds["api_key"], "include", tmp_path)]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
    finally:
        for run in locals().get("runs", []):
            run.kill()
        server.terminate()
    for out in outputs:
        print(out[-2500:])
    print(f"schemathesis: {time.monotonic() - started:.1f} s")
    assert [run.returncode for run in runs] == [0, 0], [out[-6000:] for out in outputs]
