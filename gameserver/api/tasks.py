"""Tasks over HTTP (browse, follow, share, purchase); the rules live in ``mechanics/tasks.py``.

Browse tickets are signed here: ``tk1.<base64url JSON>.<base64url HMAC-SHA256>``
with a key derived from the server's token secret, so any server process can
verify a ticket another one issued, and a forged one is refused before the rule
runs. Purchase tasks are driven by orders (``gameserver/api/orders.py``).
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from economy.errors import TicketInvalid
from economy.schema import Obj, Str
from gameserver.api.common import EMPTY_BODY, PLAYER_ERRORS, Operation, run_action
from gameserver.api.schemas import GRANTED, INT, STR, nullable, obj, with_player
from gameserver.appkeys import SETTINGS
from gameserver.http.auth import BadSeal, Sealer
from gameserver.services import RuleContext, bind
from gameserver.state.store import Rule
from mechanics import tasks

TICKET_PREFIX = "tk1."


class TicketSigner:
    """Signs and verifies browse tickets with a key derived from the token secret."""

    def __init__(self, secret: str) -> None:
        self._sealer = Sealer(secret, "petbox-task-ticket", TICKET_PREFIX)

    def sign(self, ticket: dict[str, Any]) -> str:
        return self._sealer.seal(ticket, sort_keys=True)

    def verify(self, text: str) -> tasks.Ticket:
        """The ticket's data; :class:`TicketInvalid` (403) if forged or malformed."""
        try:
            raw = self._sealer.open(text)
        except BadSeal as exc:
            raise TicketInvalid(str(exc)) from exc
        try:
            return tasks.Ticket(str(raw["task"]), str(raw["player"]), int(raw["issued_at"]),
                                str(raw["nonce"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise TicketInvalid("malformed") from exc


@functools.lru_cache(maxsize=8)
def _ticket_signer(secret: str) -> TicketSigner:
    return TicketSigner(secret)  # the key is derived once per secret, not per request


def _tickets(request: web.Request) -> TicketSigner:
    return _ticket_signer(request.app[SETTINGS].token_secret)


COMPLETE_BODY = Obj(fields={"ticket": Str(max_length=1024, default="",
                                          description="from startTask (browse tasks)")})


def _task_id(request: web.Request) -> str:
    return request.match_info["task"][:64]


async def start_task(request: web.Request) -> web.Response:
    """``startTask``: a signed ticket for browse tasks (null for the others)."""
    task, signer = _task_id(request), _tickets(request)
    return await run_action(request, EMPTY_BODY, lambda body, ctx: bind(
        tasks.start_task, tasks.StartTask(task, ctx.ref.member), ctx.sealed_by(signer.sign)))


async def complete_task(request: web.Request) -> web.Response:
    """``completeTask``: the reward, once more within the task's period limit."""
    task, signer = _task_id(request), _tickets(request)

    def make(body: dict[str, Any], ctx: RuleContext) -> Rule:
        ticket = signer.verify(body["ticket"]) if body["ticket"] else None
        return bind(tasks.complete_task, tasks.CompleteTask(task, ticket, ctx.ref.member), ctx)
    return await run_action(request, COMPLETE_BODY, make)


OPERATIONS = [
    Operation("startTask", "POST", "/v1/games/{game}/tasks/{task}/start", start_task,
              "Start a task; browse tasks get a signed ticket to complete with",
              auth="player", tag="shopper", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=obj({
                  "task": STR, "ticket": {**nullable(STR), "description": "browse tasks "
                                          "only (null for the others)"},
                  "complete_after": INT})),
    Operation("completeTask", "POST", "/v1/games/{game}/tasks/{task}/complete", complete_task,
              "Complete a task (with its ticket for browse tasks) and take its reward",
              auth="player", tag="shopper", body=COMPLETE_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=with_player(
                  {"task": STR, "granted": GRANTED, "done": INT, "limit": INT})),
]
