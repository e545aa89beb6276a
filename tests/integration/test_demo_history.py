"""``petbox demo --history``: past days played through the real action path land in SQL
on their simulated days, so analytics shows exactly what the simulation did."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gameserver.cli.demo_history import HistoryRefused, play_history
from gameserver.clock import ManualClock
from gameserver.db.database import Database
from gameserver.ops.provision import create_merchant, publish_config
from gameserver.ops.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 1, 10, 9, 30, tzinfo=SHANGHAI).timestamp()
DAYS = [date(2026, 1, 6) + timedelta(days=i) for i in range(4)]  # the 4 days before the 10th


async def test_history_days_are_the_analytics_days(settings: Settings, db: Database,
                                                   example_config: dict[str, Any],
                                                   aiohttp_client: Any) -> None:
    from gameserver.app import create_app

    creds = await create_merchant(db, "shop", int(NOW) - 40 * 86400)
    await publish_config(db, "shop", "squirrel-omg", example_config, int(NOW) - 40 * 86400)

    report = await play_history(settings, "shop", creds.signing_secret, "squirrel-omg",
                                example_config, days=4, shoppers=8, seed=3, now=NOW)

    client = await aiohttp_client(create_app(settings, clock=ManualClock(NOW)))
    resp = await client.get("/v1/admin/games/squirrel-omg/analytics?end=2026-01-09&days=4",
                            headers={"Authorization": f"Bearer {creds.api_key}"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [d["date"] for d in body["days"]] == [d.isoformat() for d in DAYS]
    # Exactly what the simulation applied: analytics counts the same shoppers ...
    active = [report.active[d] for d in DAYS]
    assert [d["dau"] for d in body["days"]] == [len(a) for a in active]
    first = {u: DAYS[i] for i in reversed(range(4)) for u in active[i]}
    assert [d["new_players"] for d in body["days"]] == [
        sum(1 for f in first.values() if f == d) for d in DAYS]
    assert [d["draws"] for d in body["days"]] == [report.draws[d] for d in DAYS]
    cohorts = [{u for u, f in first.items() if f == d} for d in DAYS]
    assert [c["d1"] and c["d1"]["retained"] for c in body["cohorts"]] == [
        len(cohorts[i] & active[i + 1]) for i in range(3)] + [None]
    assert body["totals"]["players"] == len(first) == report.shoppers
    # ... and the seed fixes the history: these are its figures, day by day.
    assert [d["dau"] for d in body["days"]] == [2, 3, 3, 3]
    assert [d["new_players"] for d in body["days"]] == [2, 2, 2, 2]
    assert [d["draws"] for d in body["days"]] == [14, 1, 6, 0]
    assert [c["d1"] and c["d1"]["retained"] for c in body["cohorts"]] == [1, 0, 1, None]
    # Past days go before real ones: a game that has players is not given a history.
    with pytest.raises(HistoryRefused, match="already has 8 players"):
        await play_history(settings, "shop", creds.signing_secret, "squirrel-omg",
                           example_config, days=1, shoppers=1, now=NOW)
