"""Energy over HTTP (``spendEnergy``); the rules live in ``mechanics/energy.py``.

The energy itself is shown by ``getPlayer`` (key ``energy``, only in games that
configure one), brought forward to now: a read changes nothing."""

from __future__ import annotations

from aiohttp import web

from economy.energy import MAX_ENERGY
from economy.schema import Int, Obj
from gameserver.api.common import PLAYER_ERRORS, Operation, run_action
from gameserver.api.schemas import INT, with_player
from gameserver.services import bind
from mechanics import energy

SPEND_BODY = Obj(fields={"amount": Int(minimum=1, maximum=MAX_ENERGY, default=1,
                                       description="units to spend (at most the energy's max)")})


async def spend_energy(request: web.Request) -> web.Response:
    """``spendEnergy``: take ``amount`` units now; 409 ``not_enough_energy`` says when."""
    return await run_action(request, SPEND_BODY, lambda body, ctx: bind(
        energy.spend_energy, energy.SpendEnergy(body["amount"]), ctx))


OPERATIONS = [
    Operation("spendEnergy", "POST", "/v1/games/{game}/energy/spend", spend_energy,
              "Spend energy; it refills over time up to its max (a new player is full)",
              auth="player", tag="shopper", body=SPEND_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=with_player({"spent": INT})),
]
