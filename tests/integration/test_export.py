"""exportEvents: NDJSON, resumable from any line's cursor, no gaps, no duplicates.

Real SQL on both backends; one test takes the real path (HTTP actions, then the
persister), one holds an uncommitted ledger insert open on PostgreSQL to show
the export waits for it instead of skipping it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import insert, update

from gameserver.db import models as m
from tests.conftest import World, app_persister
from tests.integration.test_analytics import (
    at,
    draw_row,
    grant_row,
    insert_rows,
    ledger_row,
)

EXPORT = "/v1/admin/games/squirrel/export"


async def export(world: World, query: str = "", merchant: str = "shop") -> list[dict[str, Any]]:
    resp = await world.get(f"{EXPORT}?{query}", str(world.merchants[merchant].api_key))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    text = await resp.text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


async def export_all(world: World, limit: int, cursor: str = "") -> tuple[list[Any], str]:
    """Follow end cursors page by page until ``more`` is false."""
    events: list[dict[str, Any]] = []
    while True:
        lines = await export(world, f"cursor={cursor}&limit={limit}")
        *body, end = lines
        assert end["type"] == "end" and end["count"] == len(body) <= limit
        events += body
        cursor = end["cursor"]
        if not end["more"]:
            return events, cursor


async def seed(world: World, n: int = 2500) -> None:
    rows = []
    for i in range(n):  # interleaved with another merchant's and another game's rows
        rows.append(ledger_row(f"u{i % 7}", at("2026-01-05") + i))
        if i % 3 == 0:
            rows.append(ledger_row("zed", at("2026-01-05") + i, merchant="rival"))
        if i % 5 == 0:
            rows.append(ledger_row("u1", at("2026-01-05") + i, game="other"))
    await insert_rows(world.db, m.ledger, rows)
    await insert_rows(world.db, m.draws, [draw_row("u1", at("2026-01-05")) for _ in range(3)]
                      + [draw_row("zed", at("2026-01-05"), merchant="rival")])
    await insert_rows(world.db, m.grants, [
        grant_row("u1", at("2026-01-05")), grant_row("u2", at("2026-01-05"), status="void"),
        grant_row("u3", at("2026-01-05"), shadow=True), grant_row("u4", at("2026-01-05"))])


def keys(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["type"], e["id"]) for e in events]


async def test_paged_export_has_no_gaps_and_no_duplicates(world: World) -> None:
    await world.merchant("rival", game="other")
    await seed(world)

    whole = await export(world)
    paged, cursor = await export_all(world, limit=700)

    *events, end = whole
    assert (end["type"], end["count"], end["more"]) == ("end", 2500 + 3 + 2, False)
    assert keys(paged) == keys(events)
    assert len(set(keys(events))) == len(events)
    ledger = [e for e in events if e["type"] == "ledger"]
    assert [e["ts_ms"] for e in ledger] == [(at("2026-01-05") + i) * 1000 for i in range(2500)]
    assert {e["user"] for e in ledger} == {f"u{i}" for i in range(7)}
    assert [e["id"] for e in ledger] == sorted(e["id"] for e in ledger)
    assert [e["type"] for e in events[-5:]] == ["draw"] * 3 + ["grant"] * 2
    grants = [e for e in events if e["type"] == "grant"]
    assert [(g["user"], g["status"], g["kind"]) for g in grants] == [
        ("u1", "confirmed", "coupon"), ("u4", "confirmed", "coupon")]
    assert events[-5]["record"] == {"n": events[-5]["nonce"]}
    assert set(events[0]) == {"type", "cursor", "id", "user", "kind", "name", "delta",
                              "before", "after", "reason", "ts_ms", "commit_id", "seq",
                              "player_version", "by_shopper"}
    assert {e["by_shopper"] for e in ledger} == {True}
    assert cursor == end["cursor"]
    nothing = await export(world, f"cursor={cursor}")
    assert nothing == [{"type": "end", "cursor": cursor, "count": 0, "more": False}]


async def test_resumes_from_any_lines_cursor(world: World) -> None:
    await seed(world, n=1200)
    *events, _ = await export(world)
    for cut in (0, 1, 999, 1000, 1199, 1200, len(events) - 1):
        *rest, end = await export(world, f"cursor={events[cut]['cursor']}")
        assert keys(rest) == keys(events[cut + 1:]), cut
        assert end["more"] is False


async def test_new_rows_after_the_end_cursor(world: World) -> None:
    await seed(world, n=10)
    *_, end = await export(world)
    await insert_rows(world.db, m.ledger, [ledger_row("late", at("2026-01-06"),
                                                      reason="refund:o1", by_shopper=False)])
    await insert_rows(world.db, m.draws, [draw_row("late", at("2026-01-06"))])

    *events, _ = await export(world, f"cursor={end['cursor']}")

    assert [(e["type"], e["user"]) for e in events] == [("ledger", "late"), ("draw", "late")]
    assert (events[0]["reason"], events[0]["by_shopper"]) == ("refund:o1", False)


async def test_a_pending_grant_holds_later_grants_back(world: World) -> None:
    await insert_rows(world.db, m.grants, [grant_row("a", at("2026-01-05"), status="pending"),
                                           grant_row("b", at("2026-01-05"))])
    *events, end = await export(world)
    assert events == []

    async with world.db.engine.begin() as conn:
        await conn.execute(update(m.grants).where(m.grants.c.user_id == "a")
                           .values(status="confirmed"))
    *events, _ = await export(world, f"cursor={end['cursor']}")

    assert [e["user"] for e in events] == ["a", "b"]


async def test_bad_requests(world: World) -> None:
    key = str(world.merchants["shop"].api_key)
    for query in ("cursor=abc", "cursor=v1.1.2", "cursor=v1.-1.0.0", "cursor=v2.1.1.1",
                  "limit=0", "limit=x", "limit=99999999999", "limit=%C2%B2",
                  "limit=0000000000000099999999999", "curser=v1.1.1.1", "cursor=&from=1"):
        resp = await world.get(f"{EXPORT}?{query}", key)
        assert resp.status == 422, query
    assert (await world.get("/v1/admin/games/nope/export", key)).status == 404
    token = await world.token("u1")
    assert (await world.get(EXPORT, token)).status == 403


async def test_merchant_scoped(world: World) -> None:
    await world.merchant("rival", game="squirrel")
    await seed(world, n=5)

    *events, _ = await export(world, merchant="rival")

    assert [(e["type"], e["user"]) for e in events] == \
        [("ledger", "zed"), ("ledger", "zed"), ("draw", "zed")]
    *mine, _ = await export(world)
    assert len(mine) == 5 + 3 + 2


async def test_real_actions_through_the_persister(world: World) -> None:
    app = world.client.app
    token = await world.token("u1")
    await world.post("/v1/games/squirrel/pet", token, {"species": "squirrel", "name": "N"},
                     key="a1")
    fed = await world.post("/v1/games/squirrel/pet/feed", token, {"food": "snack"}, key="f1")
    assert fed.status == 200, await fed.text()
    await world.post("/v1/games/squirrel/pet/feed", token, {"food": "snack"}, key="f2")
    await app_persister(app, consumer="c1").run_once()

    *events, _ = await export(world)

    # Ledger lines come in the order they were written (the two feeds' may come either
    # way round); as documented, by (player_version, seq) a shopper's balances chain.
    ledger = sorted((e for e in events if e["type"] == "ledger"),
                    key=lambda e: (e["user"], e["player_version"], e["seq"]))
    assert [(e["user"], e["name"], e["delta"], e["before"], e["after"]) for e in ledger
            if e["name"] == "acorn"][-2:] == [("u1", "acorn", -10, 100, 90),
                                              ("u1", "acorn", -10, 90, 80)]
    last: dict[tuple[str, str], int] = {}
    for e in ledger:
        assert last.get((e["kind"], e["name"]), e["before"]) == e["before"], e
        last[(e["kind"], e["name"])] = e["after"]


@pytest.mark.postgres
async def test_postgres_export_waits_for_an_uncommitted_insert(world: World) -> None:
    if world.db.dialect != "postgresql":
        pytest.skip("id order equals commit order on SQLite")
    await insert_rows(world.db, m.ledger, [ledger_row("early", at("2026-01-05"))])
    async with world.db.engine.connect() as conn, world.db.engine.connect() as orders:
        tx = await conn.begin()
        await conn.execute(insert(m.ledger), [ledger_row("slow", at("2026-01-05"))])
        order_tx = await orders.begin()  # the same for an order table (ids: an identity)
        await orders.execute(insert(m.order_events), [
            order_row("slow", "o-slow", "paid", 1, at("2026-01-05"))])
        await insert_later(world)  # larger ids, committed first, from another connection
        exporting = asyncio.create_task(export(world))
        await asyncio.sleep(0.3)
        assert not exporting.done()  # waiting for "slow" to commit or roll back
        await tx.commit()
        await asyncio.sleep(0.2)
        assert not exporting.done()  # and for the order
        await order_tx.commit()
        *events, _ = await exporting
    assert [(e["type"], e["user"]) for e in events] == [
        ("ledger", "early"), ("ledger", "slow"), ("ledger", "later"),
        ("order", "slow"), ("order", "later")]


async def insert_later(world: World) -> None:
    await insert_rows(world.db, m.ledger, [ledger_row("later", at("2026-01-05"))])
    await insert_rows(world.db, m.order_events, [
        order_row("later", "o-later", "paid", 1, at("2026-01-05"))])


async def test_small_id_windows_give_the_same_export(world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from gameserver.db import export as export_db

    await world.merchant("rival", game="other")
    await seed(world, n=300)
    *whole, _ = await export(world)
    monkeypatch.setattr(export_db, "ID_WINDOW", 7)

    *windowed, _ = await export(world)
    paged, _ = await export_all(world, limit=13)

    assert keys(windowed) == keys(whole) == keys(paged)
    assert len(whole) == 300 + 3 + 2


def play_row(user: str, kind: str, aggregate: str, version: int, ts: int,
             response: Any, merchant: str = "shop") -> dict[str, Any]:
    """An aggregate_ledger row as the persister writes one (the gate's JSON body)."""
    return {"commit_id": f"c-{merchant}-{aggregate}-{version}", "merchant_id": merchant,
            "game_id": "squirrel", "kind": kind, "aggregate_id": aggregate,
            "version": version, "user_id": user, "idem_key": f"k{version}",
            "request_hash": "h", "status": 200, "entry": b"",
            "body": json.dumps({"response": response, "owed": {"x": 1}}).encode(),
            "ts_ms": ts * 1000}


async def test_shared_plays_are_exported_after_the_grants(world: World) -> None:
    """Every commit on shared state (a vote, a join) is a ``play`` line with the shopper,
    the aggregate and the play's response, after the ledger, draw and grant lines; a
    cursor issued before plays were exported (three numbers) resumes with all of them."""
    await world.merchant("rival", game="squirrel")
    await seed(world, n=3)
    t = at("2026-01-05")
    await insert_rows(world.db, m.aggregate_ledger, [
        play_row("u1", "poll", "d11:b3", 1, t, {"option": "mango", "votes_today": 1}),
        play_row("zed", "poll", "d11:b3", 2, t + 1, {"option": "mango"}, merchant="rival"),
        play_row("u2", "group", "gb:abc", 1, t + 2, {"member_count": 2})])
    *events, end = await export(world)
    plays = [e for e in events if e["type"] == "play"]
    assert [e["type"] for e in events[-2:]] == ["play", "play"]
    assert [{k: v for k, v in e.items() if k not in ("id", "cursor")} for e in plays] == [
        {"type": "play", "user": "u1", "kind": "poll", "aggregate": "d11:b3", "version": 1,
         "status": 200, "ts_ms": t * 1000, "commit_id": "c-shop-d11:b3-1",
         "response": {"option": "mango", "votes_today": 1}},
        {"type": "play", "user": "u2", "kind": "group", "aggregate": "gb:abc", "version": 1,
         "status": 200, "ts_ms": (t + 2) * 1000, "commit_id": "c-shop-gb:abc-1",
         "response": {"member_count": 2}}]
    assert end["cursor"].startswith("v2.") and not end["more"]
    # A three-number cursor of the release before, at the end of the grants: only the
    # plays are left.
    last = {e["type"]: e["id"] for e in events}
    grants_end = f"v1.{last['ledger']}.{last['draw']}.{last['grant']}"
    *rest, _ = await export(world, f"cursor={grants_end}")
    assert [e["commit_id"] for e in rest] == ["c-shop-d11:b3-1", "c-shop-gb:abc-1"]


def order_row(user: str, order: str, kind: str, fen: int, ts: int,
              merchant: str = "shop") -> dict[str, Any]:
    """An order_events row as the persister writes one (no id: the database numbers it)."""
    return {"merchant_id": merchant, "game_id": "squirrel", "user_id": user,
            "order_id": order, "kind": kind, "amount_fen": fen, "commit_id": f"o-{order}-{kind}",
            "seq": 0, "ts_ms": ts * 1000}


async def test_orders_refunds_and_redemptions_follow(world: World) -> None:
    """Orders (paid, refunded whole), partial refunds and coupon redemptions are lines of
    their own after the plays, so the export reconciles GMV and coupon liability; a
    coupon redeemed after the end cursor is a ``redemption`` line resuming from it, and
    a four-number cursor of the release before resumes with all of them."""
    await world.merchant("rival", game="squirrel")
    await seed(world, n=3)
    t = at("2026-01-05")
    await insert_rows(world.db, m.order_events, [
        order_row("u1", "o1", "paid", 5000, t), order_row("zed", "o9", "paid", 1, t, "rival"),
        order_row("u2", "o2", "paid", 3000, t + 1), order_row("u2", "o2", "refunded", 1000,
                                                              t + 9)])
    await insert_rows(world.db, m.order_refunds, [{
        "merchant_id": "shop", "game_id": "squirrel", "user_id": "u1", "order_id": "o1",
        "refund_id": "r1", "amount_fen": 1500, "commit_id": "r-o1", "seq": 1,
        "ts_ms": (t + 5) * 1000}])
    *events, end = await export(world)
    assert [e["type"] for e in events[-5:]] == ["grant", "order", "order", "order", "refund"]
    assert [(e["order"], e["kind"], e["amount_fen"]) for e in events if e["type"] == "order"
            ] == [("o1", "paid", 5000), ("o2", "paid", 3000), ("o2", "refunded", 1000)]
    coupon = next(e for e in events if e["type"] == "grant")
    # refunds come after orders whatever the order of the inserts (one source each)
    await insert_rows(world.db, m.order_refunds, [{
        "merchant_id": "shop", "game_id": "squirrel", "user_id": "u2", "order_id": "o2",
        "refund_id": "r2", "amount_fen": 2000, "commit_id": "r-o2", "seq": 1,
        "ts_ms": (t + 8) * 1000}])

    redeemed = await world.client.post(
        f"/v1/admin/games/squirrel/coupons/{coupon['code']}/redeem",
        json={"reference": "till-1"},
        headers={"Authorization": f"Bearer {world.merchants['shop'].api_key}"})
    assert redeemed.status == 200, await redeemed.text()
    *new, _ = await export(world, f"cursor={end['cursor']}")

    assert [(e["type"], e.get("refund"), e["amount_fen"]) for e in new[:-1]] == [
        ("refund", "r2", 2000)]
    assert {k: v for k, v in new[-1].items() if k not in ("cursor", "id")} == {
        "type": "redemption", "grant": coupon["id"], "user": coupon["user"],
        "code": coupon["code"], "ref": coupon["ref"], "reference": "till-1",
        "redeemed_ms": int(world.clock.now() * 1000)}
    refund = next(e for e in events if e["type"] == "refund")
    assert (refund["user"], refund["order"], refund["refund"], refund["amount_fen"],
            refund["ts_ms"]) == ("u1", "o1", "r1", 1500, (t + 5) * 1000)
    # A cursor of the release before (four numbers, at the end of the plays) resumes
    # with every order, refund and redemption.
    last = {e["type"]: e["id"] for e in events}
    *old, _ = await export(world, f"cursor=v1.{last['ledger']}.{last['draw']}."
                                  f"{last['grant']}.0")
    assert [e["type"] for e in old] == ["order"] * 3 + ["refund"] * 2 + ["redemption"]


async def test_cursors_are_opaque_and_bound_to_their_game(world: World) -> None:
    """A cursor says nothing of the deployment's ids: an idle merchant's end cursor is
    the same length however busy another merchant is, and not a list of numbers.
    One of another merchant's game, altered, or past the end is refused, not read as
    a place to skip to."""
    await world.merchant("idle", game="squirrel")
    *_, idle = await export(world, merchant="idle")
    await seed(world, n=40)
    *mine, end = await export(world)
    *_, idle_after = await export(world, merchant="idle")

    assert idle_after["count"] == idle["count"] == 0
    assert len(idle_after["cursor"]) == len(idle["cursor"]) == len(end["cursor"])
    assert idle_after["cursor"] != idle["cursor"]
    assert idle_after["cursor"].count(".") == 1
    key = str(world.merchants["shop"].api_key)
    flipped = end["cursor"][:-3] + ("A" if end["cursor"][-3] != "A" else "B") + \
        end["cursor"][-2:]
    for cursor in (idle_after["cursor"], flipped, "v1.99999999999999999.0.0",
                   f"v1.{mine[0]['id']}.0.99"):
        resp = await world.get(f"{EXPORT}?cursor={cursor}", key)
        assert resp.status == 422, cursor
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_input"
        assert error["details"]["problems"][0]["path"] == "$.cursor"
    assert "past the end" in error["message"]
