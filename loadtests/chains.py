"""Values the server hands back, fed into a player's later requests (causal replay).

A generated trace cannot know what the server will answer at replay: the hold a
flash-sale claim gets, which envelope-rain round is open, the share code of an
assist or a group. It names them instead, and the replay fills them in from the
replies it got:

* a body value ``{"$ref": KEY}`` (or ``{"$ref": KEY, "field": NAME}``) is
  replaced by the value under ``KEY`` (or its field ``NAME``);
* a path parameter ``"$when": KEY`` sends the request only if ``KEY`` holds a
  true value (a real client shows "starts in 5 min" and no claim button);
* a path parameter may be a reference too (``{"team": {"$ref": KEY, "field":
  "team"}}``): the id of an object another reply handed back.

A request whose value is missing (its source was refused, or never came) is not
sent: a shopper with no hold pays nothing, a friend with no link helps no one.
The refusal that caused it is already counted at its source.

Keys, and the reply each comes from:

===================  ====================================================
``live:<sale>``      ``getFlashSale``: the sale is live with stock left
``hold:<sale>``      ``claimFlashSale``: the hold (``sku``, ``price_fen``)
``rain:<rain>``      ``getEnvelopeRain``: the rounds; ``round:<rain>`` reads
                     from it a round open now, with envelopes left, in which
                     this player has grabs left (:func:`open_round`)
``assist:<campaign>``  ``startAssist``: the assist's share code
``group:<offer>``    ``createGroupBuy``: the group's share code
``reserving:<p>``    ``getPresale``: the presale takes reservations, some left
``reserved:<p>``     ``reservePresale``: the reservation (``deposit_fen``, ``sku``)
``open:<campaign>``  ``getSampleCampaign``: the sample campaign takes applications
``won:<campaign>``   ``applySample``: the application won a sample at once
``team:<season>``    ``createTeam``: the team (``code`` to share, ``team`` id)
``reached:<season>`` ``getTeam``: a milestone the team reached
===================  ====================================================

Share codes pass between players: a *friend* of player ``P`` is named
``P+<tag>`` and reads ``assist:``/``group:``/``team:`` keys from ``P``'s replies. A friend
is replayed by the same worker (and generator shard) as ``P``
(:func:`home`), so the code passes in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FRIEND = "+"
SHARED = ("assist:", "group:", "team:")
"""Key prefixes read from the home player's replies (share codes)."""

MISSING = object()


def home(player: str) -> str:
    """The player whose share codes ``player`` receives (itself unless a friend)."""
    return player.split(FRIEND, 1)[0]


def shared(key: str) -> bool:
    return key.startswith(SHARED)


def refs(body: Any) -> list[str]:
    """The keys ``body`` refers to (depth-first)."""
    if isinstance(body, dict):
        if "$ref" in body:
            return [str(body["$ref"])]
        return [k for v in body.values() for k in refs(v)]
    if isinstance(body, list):
        return [k for v in body for k in refs(v)]
    return []


def fill(body: Any, values: Mapping[str, Any]) -> Any:
    """``body`` with every reference replaced from ``values``; MISSING if one lacks."""
    if isinstance(body, dict):
        if "$ref" in body:
            value = values.get(str(body["$ref"]))
            if value is None:
                return MISSING
            if "field" in body:
                value = value.get(str(body["field"])) if isinstance(value, dict) else None
            return MISSING if value is None else value
        out = {}
        for k, v in body.items():
            out[k] = fill(v, values)
            if out[k] is MISSING:
                return MISSING
        return out
    if isinstance(body, list):
        items = [fill(v, values) for v in body]
        return MISSING if any(v is MISSING for v in items) else items
    return body


def open_round(view: Any, grabbed: Mapping[str, int]) -> str | None:
    """The first round of a ``getEnvelopeRain`` reply open now with envelopes left in
    which the player has grabs left (``grabbed``: its grabs by round)."""
    rounds = view.get("rounds") if isinstance(view, dict) else None
    for r in rounds or ():
        if (r.get("status") == "open" and int(r.get("envelopes_left") or 0) > 0
                and grabbed.get(str(r.get("round")), 0) < int(r.get("grab_limit") or 1)):
            return str(r["round"])
    return None


def kept(op: str, params: Mapping[str, Any], ok: bool, data: Any) -> dict[str, Any]:
    """What the reply to ``op`` hands back, by key (None: the source failed)."""
    p = params
    view = data if ok and isinstance(data, dict) else {}
    later = _kept_later_plays(op, p, view)
    if later is not None:
        return later
    if op == "getFlashSale":
        live = ok and isinstance(data, dict) and data.get("status") == "live" \
            and int(data.get("stock_left") or 0) > 0
        return {f"live:{p.get('sale')}": live or None}
    if op == "claimFlashSale":
        hold = data if ok and isinstance(data, dict) and data.get("sku") else None
        return {f"hold:{p.get('sale')}": hold}
    if op == "getEnvelopeRain":
        return {f"rain:{p.get('rain')}": data if ok else None}
    if op == "startAssist":
        code = data.get("code") if ok and isinstance(data, dict) else None
        return {f"assist:{p.get('campaign')}": code}
    if op == "createGroupBuy":
        code = data.get("code") if ok and isinstance(data, dict) else None
        return {f"group:{p.get('offer')}": code}
    return {}


def _kept_later_plays(op: str, p: Mapping[str, Any],
                      view: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`kept` of presales, samples and teams (None: ``op`` is none of theirs)."""
    if op == "getPresale":
        open_ = view.get("status") == "reserving" and int(view.get("stock_left") or 0) > 0
        return {f"reserving:{p.get('presale')}": open_ or None}
    if op == "reservePresale":
        return {f"reserved:{p.get('presale')}": dict(view) or None}
    if op == "getSampleCampaign":
        return {f"open:{p.get('campaign')}": view.get("status") == "open" or None}
    if op == "applySample":
        return {f"won:{p.get('campaign')}": view.get("status") == "won" or None}
    if op == "createTeam":
        team = view if view.get("code") and view.get("team") else None
        return {f"team:{p.get('season')}": team}
    if op == "getTeam":
        reached = any(m.get("reached_at") for m in _milestones(view.get("milestones")))
        return {f"reached:{p.get('season')}": reached or None}
    return None


def _milestones(value: Any) -> list[dict[str, Any]]:
    """The milestones of a ``getTeam`` reply (a list, or a map by id)."""
    items = value.values() if isinstance(value, dict) else value or ()
    return [m for m in items if isinstance(m, dict)]


PRODUCERS = frozenset({"getFlashSale", "claimFlashSale", "getEnvelopeRain", "startAssist",
                       "createGroupBuy", "getPresale", "reservePresale", "getSampleCampaign",
                       "applySample", "createTeam", "getTeam"})
"""Operations whose replies :func:`kept` reads (others are not looked at)."""
