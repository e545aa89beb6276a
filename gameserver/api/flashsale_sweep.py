"""The flash-sale room's background job: holds past their deadline end, and their units
go back to the stock (flash sales: unpaid by ``pay_by``; presales: not converted by
``convert_until``).

SQL is the truth of what is outstanding: every hold is a *confirmed* grant row of
kind ``flash_hold`` or ``presale_hold`` (at most the stocks' worth at a time), whose
detail says the hold id and its deadline. For each one past its deadline a pass:

1. commits :func:`mechanics.flashsale.expire_sale_hold` on the shopper with the
   Idempotency-Key ``hold:end-<hold>`` (a pass that repeats it replays the answer;
   :func:`gameserver.state.keys.system_key`, so never a key the shopper sends):
   the shopper's state says whether it was paid (``ingestOrder`` commits on the same
   player, so a payment and the expiry are ordered by the player's version);
2. ends the grant in SQL: ``sold`` when paid, else ``released``, with its unit given
   back to ``prize_stock`` and the Redis gate (:meth:`ValueTier.end_grants`: only a
   row still confirmed moves, so a second pass or host moves nothing);
3. tells the merchant of a released hold through the webhook outbox
   (:mod:`gameserver.jobs.webhooks`: signed, durable, at least once), *before* step 2 so a
   pass that dies in between emits again (the outbox keeps one event per key):
   ``presale.released`` (the deposit, if any, is the merchant's to refund or keep) and
   ``flashsale.released`` (an unpaid checkout to close), keyed ``<event>:<hold>``.
   Load-test (shadow) holds tell nobody.

It runs under a lease (one host at a time does the work), and each step is
idempotent per hold, so overlapping passes are safe as well.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from economy.errors import DomainError
from economy.flashsale import FLASH_KIND, PRESALE_KIND
from gameserver.appkeys import CLOCK, GAMES, KEYS, REDIS, SERVICES, SETTINGS, SHADOW
from gameserver.clock import Clock
from gameserver.db.grants import confirmed_page
from gameserver.games import GameRegistry
from gameserver.jobs.lease import job_lease
from gameserver.jobs.periodic import PeriodicTask
from gameserver.jobs.webhooks import OUTBOX, Outbox
from gameserver.services import RuleContext, Services, bind
from gameserver.state.keys import PlayerRef, shard_of, system_key
from gameserver.state.value import StockView
from mechanics import flashsale as rules

log = logging.getLogger("petbox.salehold")

KINDS = (FLASH_KIND, PRESALE_KIND)
SWEEP_INTERVAL_S = 5.0
"""At most this long between a deadline and the pass that ends its hold (shorter when
``PETBOX_RECONCILE_INTERVAL`` is)."""
BATCH = 500

EVENTS = {FLASH_KIND: "flashsale.released", PRESALE_KIND: "presale.released"}


def hold_key(hold: str) -> str:
    """The Idempotency-Key of a hold's end on the shopper (the shopper knows the hold
    id: a key of their alphabet could be taken first and block the sweep with 422)."""
    return system_key("hold", f"end-{hold}")


class HoldSweeper(PeriodicTask):
    """Ends expired holds of every keyspace (real, and shadow when configured)."""

    name = "petbox-salehold"

    def __init__(self, keyspaces: Sequence[Services], games: GameRegistry, clock: Clock,
                 shards: int, interval: float, *, batch: int = BATCH,
                 outbox: Outbox | None = None) -> None:
        super().__init__(interval)
        self.keyspaces, self.games, self.clock = list(keyspaces), games, clock
        self.shards, self.batch, self.outbox = shards, batch, outbox
        self.released = self.sold = 0

    async def run_once(self) -> tuple[int, int]:
        """One pass over every keyspace; returns (released, sold) by this pass."""
        released = sold = 0
        for services in self.keyspaces:
            r, s = await self.sweep(services)
            released, sold = released + r, sold + s
        self.released, self.sold = self.released + released, self.sold + sold
        if released or sold:
            log.info("sale holds ended: %d released, %d sold", released, sold)
        return released, sold

    async def sweep(self, services: Services) -> tuple[int, int]:
        """End the keyspace's holds whose deadline passed (keyset pages by grant id)."""
        now = int(self.clock.now())
        released = sold = 0
        after = 0
        while True:
            rows = await self._page(services, after)
            for row in rows:
                if int(row["detail"].get("until", 0)) < now:
                    outcome = await self._end_one(services, row)
                    released += outcome == "released"
                    sold += outcome == "sold"
            if len(rows) < self.batch:
                return released, sold
            after = int(rows[-1]["id"])

    async def _page(self, services: Services, after: int) -> list[dict[str, Any]]:
        return await confirmed_page(services.db.background, KINDS, after, self.batch)

    async def _end_one(self, services: Services, row: dict[str, Any]) -> str:
        """:meth:`_end`, a failure of one hold (a busy player, SQL timing out) logged and
        left for the next pass rather than ending this one."""
        try:
            return await self._end(services, row)
        except (DomainError, SQLAlchemyError, RedisError, OSError, TimeoutError) as exc:
            self.failures += 1
            log.warning("hold %s not ended this pass: %r", row["detail"].get("hold"), exc)
            return ""

    async def _end(self, services: Services, row: dict[str, Any]) -> str:
        """Steps 1-3 for one hold; what became of it (``released``, ``sold``, ``""``)."""
        answer = await self._expire_on_shopper(services, row)
        result = answer.get("result")
        if result in ("expired", "missing"):
            await self._tell(services, row, answer)
            done = await services.value.end_grants([int(row["id"])], "released", True)
            return "released" if done else ""
        if result == "paid":
            done = await services.value.end_grants([int(row["id"])], "sold", False)
            return "sold" if done else ""
        return ""  # still held (a clock behind the deadline) or its game is gone

    async def _tell(self, services: Services, row: dict[str, Any],
                    answer: dict[str, Any]) -> None:
        """The merchant's ``*.released`` webhook (idempotent by its key)."""
        if self.outbox is None or services.shadow:
            return
        detail, event = row["detail"], EVENTS[row["kind"]]
        data = {"user": row["user_id"], "sale": detail.get("sale"), "hold": detail["hold"],
                "until": detail.get("until"), "sku": detail.get("sku"),
                "price_fen": detail.get("price_fen"), "reason": answer.get("result")}
        if row["kind"] == PRESALE_KIND:
            data.update(deposit_fen=detail.get("deposit_fen", 0),
                        deposit_order=answer.get("deposit_order"))
        await self.outbox.emit(merchant=row["merchant_id"], game=row["game_id"], event=event,
                               key=f"{event}:{detail['hold']}", data=data)

    async def _expire_on_shopper(self, services: Services, row: dict[str, Any]
                                 ) -> dict[str, Any]:
        merchant, game, user = row["merchant_id"], row["game_id"], row["user_id"]
        try:
            live = await self.games.get(merchant, game)
        except DomainError:
            log.warning("hold %s: game %s/%s not live; left for later", row["id"], merchant,
                        game)
            return {}
        ref = PlayerRef(merchant, game, user, shard_of(merchant, user, self.shards))
        hold = str(row["detail"]["hold"])
        key = hold_key(hold)
        rule = bind(rules.expire_sale_hold, rules.ExpireHold(hold),
                    RuleContext(live, StockView(), ref))
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        reply = await services.run(ref, key, digest, rule)
        return dict(orjson.loads(reply.body))


def sweeper_ctx() -> Callable[[web.Application], AsyncIterator[None]]:
    """The ``cleanup_ctx`` that runs the sweeper on this host (under its lease)."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.run_background:
            yield
            return
        keyspaces = [app[SERVICES]] + ([app[SHADOW]] if SHADOW in app else [])
        interval = min(SWEEP_INTERVAL_S, settings.reconcile_interval)
        sweeper = (HoldSweeper(keyspaces, app[GAMES], app[CLOCK], settings.shards, interval,
                               outbox=app[OUTBOX])
                   .leased(job_lease(app[REDIS], app[KEYS].prefix, "salehold", interval))
                   .start())
        try:
            yield
        finally:
            await sweeper.stop()
    return ctx
