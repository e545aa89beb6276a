"""Crash between the two commits of a team join: a real ``petbox serve`` exits
(``os._exit``, as abrupt as SIGKILL) right after the team's gate commit, or right after
the shopper's commit (before the owed record is settled). After a restart each side
converges exactly once:

- ann: ``createTeam`` crashed after the shopper's commit → a retry replays the team
  with its code, the reconciler settles the record;
- bob: ``joinTeam`` crashed after the gate; the client retries with its key → seated
  once, member once, and the retry answers the team as the gate recorded it;
- cid: crashed after the gate; nobody retries → the owed reconciler makes cid a member
  (their ``getPlayer`` shows the team), a late retry replays.

The team then has exactly ann, bob and cid, and each shopper counts one team joined.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gameserver.ops.embedded import RedisProcess, free_port
from tests.conftest import BASIC_CONFIG
from tests.reliability.harness import ServerProc, Sessions, base_env, call, provision

pytestmark = pytest.mark.slow

MERCHANT = "teamshop"
GAME = "squirrel"


def team_config(now: int) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
    config["teams"] = {"s11": {"name": "Teams", "starts_at": now - 3600,
                               "ends_at": now + 86400, "max_size": 5}}
    return config


class Shop(Sessions):
    """HTTP calls of the test against whichever server process is up."""

    async def post(self, user: str, path: str, body: Any, key: str) -> tuple[int, Any]:
        return await call(self.http, "POST", f"{self.server.base}/v1/games/{GAME}/teams/s11"
                          f"{path}", await self.tok(user), body, key)

    async def membership(self, user: str) -> dict[str, Any]:
        return dict((await self.player(user))["teams"]["s11"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the protocol is SQL-free
async def test_crash_between_the_commits_of_a_team_converges_once(
        aof_redis: RedisProcess, db_url: str, tmp_path: Path) -> None:
    base = base_env(tmp_path, aof_redis.url, db_url, PETBOX_OWED_AFTER="1",
                    PETBOX_RECONCILE_INTERVAL="0.3")
    creds = provision(base, tmp_path, MERCHANT, team_config(int(time.time())))
    port, log = free_port(), tmp_path / "server.log"
    team: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        for user, point in (("ann", "after_shopper"), ("bob", "after_gate"),
                            ("cid", "after_gate")):
            server = ServerProc({**base, "PETBOX_TEST_FAILPOINT": point,
                                 "PETBOX_RUN_BACKGROUND": "0"}, port, log)
            server.start()
            async with aiohttp.ClientSession() as own:  # no kept-alive link to a dead server
                shop = Shop(own, server, creds)
                path, body = "", {}
                if user != "ann":
                    if not team:  # ann's side committed before the crash: a retry replays
                        status, team = await shop.post("ann", "", {}, "k-ann")
                        assert status == 200 and team["size"] == 1, team
                    path, body = "/join", {"code": team["code"]}
                with pytest.raises(aiohttp.ClientError):
                    await shop.post(user, path, body, f"k-{user}")
            assert server.proc is not None
            assert await asyncio.to_thread(server.proc.wait, 30) == 137

        server = ServerProc(base, port, log)
        server.start()
        shop = Shop(http, server, creds)
        code = {"code": team["code"]}
        status, body = await shop.post("bob", "/join", code, "k-bob")  # the retry
        assert status == 200, body
        assert (body["team"], body["size"]) == (team["team"], 2)  # as the gate saw it

        async def reconciled() -> bool:
            teams = [(await shop.membership(u))["team"] for u in ("ann", "bob", "cid")]
            return teams == [team["team"]] * 3
        deadline = time.monotonic() + 20
        while not await reconciled():
            assert time.monotonic() < deadline, "did not converge"
            await asyncio.sleep(0.2)
        for user in ("bob", "cid"):  # late retries replay, nothing twice
            status, body = await shop.post(user, "/join", code, f"k-{user}")
            assert status == 200 and body["team"] == team["team"], body
        for user in ("ann", "bob", "cid"):
            assert (await shop.membership(user))["teams_joined"] == 1
        status, view = await call(http, "GET", f"{server.base}/v1/games/{GAME}/teams/s11/"
                                  f"{team['team']}", await shop.tok("ann"))
        assert status == 200, view
        # a shopper's view masks the members' ids (ann sees herself as ``me``)
        assert sorted((m["user"], m["me"]) for m in view["members"]) == [
            ("a***", True), ("b***", False), ("c***", False)]
        assert server.terminate() == 0
