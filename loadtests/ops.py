"""The shopper operations a trace may hold, as API.md names them.

Only HTTP facts live here (method, path template, credential, read or write);
``loadtests`` does not load the server (of it, only the standard-library-only
:mod:`gameserver.http.signing`), so this table mirrors API.md by hand.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Auth = Literal["none", "player", "order"]
"""``order``: a merchant event signed with the signing secret (``ingestOrder``)."""


@dataclass(frozen=True, slots=True)
class Op:
    """One operation: how to send it."""

    op_id: str
    method: str
    path: str
    auth: Auth = "player"

    @property
    def is_write(self) -> bool:
        """A player POST that changes game state (and needs an Idempotency-Key)."""
        return self.method == "POST" and self.auth == "player"

    def url_path(self, params: Mapping[str, str]) -> str:
        """The path with ``{game}``-style parameters filled in; KeyError if one lacks."""
        return self.path.format_map(params)

    def path_params(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.path) if name]


G = "/v1/games/{game}"
OPERATIONS: dict[str, Op] = {op.op_id: op for op in (
    Op("createSession", "POST", "/v1/sessions", "none"),
    Op("getPlayer", "GET", f"{G}/me"),
    Op("adoptPet", "POST", f"{G}/pet"),
    Op("feedPet", "POST", f"{G}/pet/feed"),
    Op("playWithPet", "POST", f"{G}/pet/play"),
    Op("collectProduce", "POST", f"{G}/pet/collect"),
    Op("checkIn", "POST", f"{G}/checkin"),
    Op("startTask", "POST", f"{G}/tasks/{{task}}/start"),
    Op("completeTask", "POST", f"{G}/tasks/{{task}}/complete"),
    # Public, but with a token it names the merchant and the player's seed commitment.
    Op("getBoxSeries", "GET", f"{G}/boxes/{{series}}"),
    Op("drawBox", "POST", f"{G}/boxes/{{series}}/draw"),
    Op("listDraws", "GET", f"{G}/draws"),
    Op("exchange", "POST", f"{G}/exchange"),
    Op("getLeaderboard", "GET", f"{G}/leaderboards/{{board}}"),
    Op("cleanPet", "POST", f"{G}/pet/clean"),
    Op("makeupCheckIn", "POST", f"{G}/checkin/makeup"),
    Op("getPoll", "GET", f"{G}/polls/{{poll}}"),
    Op("castVote", "POST", f"{G}/polls/{{poll}}/vote"),
    Op("getFlashSale", "GET", f"{G}/flashsales/{{sale}}"),
    Op("claimFlashSale", "POST", f"{G}/flashsales/{{sale}}/claim"),
    Op("getEnvelopeRain", "GET", f"{G}/rains/{{rain}}"),
    Op("grabEnvelope", "POST", f"{G}/rains/{{rain}}/grab"),
    Op("startAssist", "POST", f"{G}/assists/{{campaign}}"),
    Op("giveAssist", "POST", f"{G}/assists/{{campaign}}/help"),
    Op("getAssist", "GET", f"{G}/assists/{{campaign}}/{{assist}}"),
    Op("listGroupBuys", "GET", f"{G}/groupbuys/{{offer}}"),
    Op("createGroupBuy", "POST", f"{G}/groupbuys/{{offer}}"),
    Op("joinGroupBuy", "POST", f"{G}/groupbuys/{{offer}}/join"),
    # The shopper pays a flash-sale hold: the merchant's signed order (the load tester
    # holds the signing secret; shadow orders of a load-test merchant stay shadow).
    Op("ingestOrder", "POST", "/v1/events/orders", "order"),
    Op("listMyCoupons", "GET", f"{G}/coupons"),
    Op("joinTeam", "POST", f"{G}/teams/{{season}}/join"),
    Op("createTeam", "POST", f"{G}/teams/{{season}}"),
    Op("getTeam", "GET", f"{G}/teams/{{season}}/{{team}}"),
    Op("leaveTeam", "POST", f"{G}/teams/{{season}}/leave"),
    Op("claimTeamRewards", "POST", f"{G}/teams/{{season}}/claim"),
    Op("getGroupBuy", "GET", f"{G}/groupbuys/{{offer}}/groups/{{group}}"),
    Op("leaveGroupBuy", "POST", f"{G}/groupbuys/{{offer}}/groups/{{group}}/leave"),
    Op("getPresale", "GET", f"{G}/presales/{{presale}}"),
    Op("reservePresale", "POST", f"{G}/presales/{{presale}}"),
    Op("getSampleCampaign", "GET", f"{G}/samples/{{campaign}}"),
    Op("applySample", "POST", f"{G}/samples/{{campaign}}/apply"),
    Op("listMySamples", "GET", f"{G}/samples"),
    Op("reviewSample", "POST", f"{G}/samples/{{campaign}}/review"),
    Op("spendEnergy", "POST", f"{G}/energy/spend"),
    Op("rotateSeed", "POST", f"{G}/boxes/seed/rotate"),
)}

SERVED_NOW = ("createSession", "getPlayer", "adoptPet", "feedPet", "playWithPet",
              "collectProduce", "checkIn", "startTask", "completeTask", "getBoxSeries",
              "drawBox", "listDraws", "exchange", "getLeaderboard", "cleanPet", "makeupCheckIn",
              "getPoll", "castVote", "getFlashSale", "claimFlashSale", "getEnvelopeRain",
              "grabEnvelope", "startAssist", "giveAssist", "getAssist", "listGroupBuys",
              "listMyCoupons", "joinTeam", "createGroupBuy", "joinGroupBuy", "ingestOrder",
              "createTeam", "getTeam", "leaveTeam", "claimTeamRewards", "getGroupBuy",
              "leaveGroupBuy", "getPresale", "reservePresale", "getSampleCampaign",
              "applySample", "listMySamples", "reviewSample", "spendEnergy", "rotateSeed")
"""What petbox serves today (``--ops served``); name operations for older builds."""


def parse_ops(spec: str | Iterable[str] | None) -> frozenset[str] | None:
    """``"getPlayer,feedPet"`` (or an iterable) → a checked set; ``None``/"all" → None."""
    if spec is None:
        return None
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    if not names or names == ["all"]:
        return None
    if names == ["served"]:
        return frozenset(SERVED_NOW)
    unknown = sorted(set(names) - set(OPERATIONS))
    if unknown:
        raise ValueError(f"unknown operation(s) {', '.join(unknown)}; "
                         f"known: {', '.join(OPERATIONS)}")
    return frozenset(names)
