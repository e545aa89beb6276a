"""JSON Schemas of the success bodies that several operations share: the player view
(``mechanics.view.player_view``: its core and one part per view of
``mechanics.registry.MECHANICS``), draw records, rewards and grants.

Objects allow properties not named here (an added field is not a breaking change);
``required`` names what is always there. tests/integration/test_response_schemas.py
validates real answers against them and checks that every view part of the registry
has a schema here, so a mechanic cannot add a part the document does not describe.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
COUNTS: Schema = {"type": "object", "additionalProperties": INT,
                  "description": "id → integer amount"}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}


def obj(props: dict[str, Schema], required: list[str] | None = None,
        description: str = "") -> Schema:
    """An object with ``props``; all of them required unless ``required`` says which."""
    out: Schema = {"type": "object", "properties": props,
                   "required": list(props) if required is None else required}
    if description:
        out["description"] = description
    return out


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def map_of(values: Schema) -> Schema:
    return {"type": "object", "additionalProperties": values}


REWARD = obj({"currency": COUNTS, "items": COUNTS, "coupon": STR}, ["currency", "items"],
             "currency and items granted; coupon: a coupon template")
GRANTED = obj({"currency": COUNTS, "items": COUNTS, "coupons": COUNTS, "repaid": COUNTS},
              ["currency", "items"],
              "what was granted; coupons: template → count; repaid (when any): the part "
              "that paid the shopper's debts first (`currency:<id>`/`item:<id>` → amount), "
              "counted in currency and items but not added to the balances")
PITY = obj({"hard": INT, "soft": INT})

PET = obj({
    "species": STR, "name": STR,
    "stats": map_of(obj({"value": NUM, "max": INT})),
    "states": array(STR),
    "xp": INT,
    "stage": nullable(obj({"id": nullable(STR), "name": nullable(STR), "index": INT,
                           "next_xp": nullable(INT)})),
    "produce": nullable(obj({"currency": STR, "pending": INT, "pending_milli": INT,
                             "cap": INT, "per_hour": INT, "full_at": nullable(INT)})),
    "adopted_at": INT,
})
CHECKIN = obj({"streak": INT, "checked_in_today": BOOL, "total": INT, "next_cycle_day": INT,
               "cycle_length": INT, "makeup_days": array(STR)})
TASK = obj({"kind": STR, "period": STR, "limit": INT, "done": INT, "reward": REWARD,
            "browse_s": INT, "spend_fen": INT, "target_fen": INT},
           ["kind", "period", "limit", "done", "reward"])
BOX_SERIES_STATE = obj({"pity": PITY, "owned": COUNTS, "today": INT, "day": INT, "total": INT,
                        "completed": BOOL})
BOXES = obj({"seed_hash": STR, "nonce": INT, "series": map_of(BOX_SERIES_STATE)},
            ["seed_hash", "nonce"])
ENERGY = obj({"name": STR, "value": INT, "max": INT, "next_refill_at": nullable(INT),
              "full_at": nullable(INT)})

VIEW_PARTS: dict[str, Schema] = {
    "pet": nullable(PET),
    "cooldowns": {**COUNTS, "description": "action → when its cooldown ends"},
    "coupons": obj({"won": INT}, description="coupons won (listMyCoupons lists them)"),
    "checkin": nullable(CHECKIN),
    "tasks": nullable(map_of(TASK)),
    "exchanges": nullable(map_of(obj({"used": INT, "limit": INT}))),
    "boxes": BOXES,
    "energy": ENERGY,
    "experiments": ANY_OBJECT,
    "sale_holds": array(ANY_OBJECT),
    "assists": ANY_OBJECT,
    "groupbuys": array(ANY_OBJECT),
    "teams": ANY_OBJECT,
}
"""The schema of each view part of the registry, by its key."""

ALWAYS_SHOWN = ["pet", "cooldowns", "checkin", "tasks", "exchanges"]
"""The parts shown even when None (``View.omit_none`` false)."""

PLAYER = obj({"wallet": COUNTS, "inventory": COUNTS, **VIEW_PARTS, "debts": COUNTS,
              "created_at": INT},
             ["wallet", "inventory", *ALWAYS_SHOWN, "debts", "created_at"],
             "the player as of now (getPlayer)")


def with_player(props: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """A shopper action's answer: its own fields and the player after it."""
    return obj({**props, "player": PLAYER},
               [*(list(props) if required is None else required), "player"])


DRAW = obj({
    "series": STR, "position": INT, "item": STR, "rarity": STR, "kind": STR,
    "prize": nullable(obj({"type": STR, "name": STR, "template": nullable(STR),
                           "sku": nullable(STR), "face_value_fen": nullable(INT)}, ["type"])),
    "nonce": INT, "seed_hash": STR, "client_seed": STR, "table": STR,
    "version": INT, "pity_before": PITY, "pity_after": PITY, "forced": nullable(STR),
    "level": INT, "roll": INT, "total": INT, "out": array(STR), "excluded": array(STR),
    "at": INT,
}, ["series", "item", "rarity", "kind", "nonce", "seed_hash", "client_seed", "at"],
   "one draw with what is needed to verify it (docs/fairness.md)")

SHARED: dict[str, Schema] = {"Player": PLAYER, "Pet": PET, "Draw": DRAW, "Reward": REWARD,
                             "Granted": GRANTED}
"""Stated once in the OpenAPI document's components and referred to where used."""


def shared(name: str, schema: Schema) -> Schema:
    """``schema`` (the very object), stated once in the OpenAPI document's components as
    ``name`` and referred to wherever an operation uses it (and a named type of the
    generated SDK types): for a room's schema that several of its operations answer."""
    if SHARED.setdefault(name, schema) is not schema:
        raise ValueError(f"two shared schemas named {name}")
    return schema
