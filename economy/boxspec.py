"""The blind-box config section's shape: constants and specs (see :mod:`economy.boxes`).

Kept apart from the model so that the cross-checks (:mod:`economy.boxchecks`) and
the model (:mod:`economy.boxes`) can both read it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from economy.schema import ID_PATTERN, MAX_TIME, Bool, Enum, Int, Map, Num, Obj, Str, validate

MAX_AMOUNT: Final = 10**12
"""Same bound as :data:`economy.config.MAX_AMOUNT` (not imported: config imports us)."""
MAX_WEIGHT: Final = 10**9
MAX_PITY_DRAWS: Final = 1000
"""Hard pity window, soft pity start and soft ramp length are bounded so the
disclosure's Markov chain stays small (and no merchant hides a 10⁶-draw pity)."""
PPM: Final = 1_000_000
AGE_BANDS: Final = ("under_8", "8_17", "18_plus")
POLICIES: Final = ("allow", "guardian", "deny")
_STRICTNESS: Final = {"allow": 0, "guardian": 1, "deny": 2}
_LEGAL_MINIMUM: Final = {"under_8": "deny", "8_17": "guardian"}
"""SAMR 2023: no sales to under-8s; 8–17 only with a guardian's consent. Stricter is fine."""
_TABLE_CACHE_MAX: Final = 4096

TIER_SPEC = Obj(description="A rarity tier; a higher rank is rarer.", fields={
    "name": Str(min_length=1, max_length=40),
    "rank": Int(minimum=0, maximum=100),
})

BOX_ITEM_SPEC = Obj(description="A collectible in a series; its id is an item of `$.items`.",
                    fields={
    "tier": Str(pattern=ID_PATTERN),
    "weight": Int(minimum=0, maximum=MAX_WEIGHT, description="relative weight (integer)"),
    "max_copies": Int(minimum=0, maximum=1_000_000, default=0,
                      description="most copies a player can draw; 0 = no limit"),
})

PRIZE_SPEC = Obj(description="A limited real prize with a global stock.", fields={
    "name": Str(min_length=1, max_length=60),
    "kind": Enum(values=("coupon", "goods")),
    "tier": Str(pattern=ID_PATTERN),
    "weight": Int(minimum=0, maximum=MAX_WEIGHT),
    "stock": Int(minimum=0, maximum=10**9, description="initial global stock"),
    "fallback": Str(pattern=ID_PATTERN,
                    description="collectible of this series that gets the weight when out"),
    "template": Str(max_length=64, default="", description="merchant coupon template (coupon)"),
    "sku": Str(max_length=64, default="", description="merchant goods SKU (goods)"),
    "face_value_fen": Int(minimum=0, maximum=MAX_AMOUNT,
                          description="value to the shopper in fen (1/100 CNY)"),
    "max_copies": Int(minimum=0, maximum=1_000_000, default=1,
                      description="most a player can win; 0 = no limit"),
    "valid_days": Int(minimum=0, maximum=3650, default=0,
                      description="days a won coupon stays usable; 0 = no expiry"),
})

PRICE_SPEC = Obj(description="Price of one draw: exactly one of `currency` or `item`.", fields={
    "currency": Str(pattern=ID_PATTERN, default="", max_length=64),
    "item": Str(pattern=ID_PATTERN, default="", max_length=64, description="a ticket item"),
    "amount": Int(minimum=1, maximum=MAX_AMOUNT),
})

PITY_SPEC = Obj(description="Pity rules; counters are per player per series.", fields={
    "hard": Obj(default=None, description="within `within` draws at least one of tier ≥ `tier`",
                fields={"tier": Str(pattern=ID_PATTERN),
                        "within": Int(minimum=1, maximum=MAX_PITY_DRAWS)}),
    "soft": Obj(default=None,
                description="from draw `from` since the last tier ≥ `tier`, its chance rises "
                            "by `step` per draw",
                fields={"tier": Str(pattern=ID_PATTERN),
                        "from": Int(minimum=1, maximum=MAX_PITY_DRAWS),
                        "step": Num(minimum=1e-6, maximum=1.0,
                                    description="probability added per draw (0.06 = 6 points)")}),
    "ten_draw": Obj(default=None, description="a 10-draw has at least one of tier ≥ `tier`",
                    fields={"tier": Str(pattern=ID_PATTERN)}),
})

REWARD_SPEC = Obj(description="Granted once when a player owns every collectible of the series.",
                  fields={
    "currencies": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), default={}),
    "items": Map(values=Int(minimum=1, maximum=1_000_000), default={}),
})

SERIES_SPEC = Obj(description="A blind-box series.", fields={
    "name": Str(min_length=1, max_length=80),
    "price": PRICE_SPEC,
    "opens_at": Int(minimum=0, maximum=MAX_TIME, default=0, description="unix s; 0 = open"),
    "closes_at": Int(minimum=0, maximum=MAX_TIME, default=0,
                     description="unix s; 0 = never closes"),
    "daily_cap": Int(minimum=0, maximum=100_000, default=0,
                     description="draws per player per game-timezone day; 0 = none"),
    "total_cap": Int(minimum=0, maximum=10_000_000, default=0,
                     description="draws per player ever; 0 = none"),
    "tiers": Map(values=TIER_SPEC, min_items=1, max_items=10),
    "items": Map(values=BOX_ITEM_SPEC, min_items=1, max_items=200),
    "prizes": Map(values=PRIZE_SPEC, default={}, max_items=50),
    "no_repeat_until_complete": Bool(default=False, description="owned collectibles are skipped "
                                     "until the player owns the whole set"),
    "pity": PITY_SPEC,
    "completion_reward": Obj(default=None, fields=REWARD_SPEC.fields,
                             description=REWARD_SPEC.description),
})

AGE_GATE_FIELDS: dict[str, Any] = {
    "unknown": Enum(values=POLICIES, default="allow", description="sessions without an age band"),
    "under_8": Enum(values=POLICIES, default="deny"),
    "8_17": Enum(values=POLICIES, default="guardian"),
    "18_plus": Enum(values=POLICIES, default="allow"),
}
AGE_GATE_SPEC = Obj(description="Who may draw, by the session's age band.",
                    fields=AGE_GATE_FIELDS,
                    default=validate(Obj(fields=AGE_GATE_FIELDS), {})[0])

_BOXES_FIELDS: dict[str, Any] = {
    "max_price": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), default={},
                     description="most one draw may cost, per currency or ticket item"),
    "default_max_price": Int(minimum=1, maximum=MAX_AMOUNT, default=100_000,
                             description="cap for a price unit not in `max_price`"),
    "age_gate": AGE_GATE_SPEC,
    "draw_records_days": Int(minimum=90, maximum=3650, default=90,
                             description="how long draw records are kept"),
    "series": Map(values=SERIES_SPEC, default={}, max_items=100),
}
BOXES_DEFAULT: Final = validate(Obj(fields=_BOXES_FIELDS), {})[0]
BOXES_SPEC = Obj(description="Blind boxes (盲盒).", fields=_BOXES_FIELDS, default=BOXES_DEFAULT)



def _paid_units(d: Mapping[str, Any]) -> dict[str, bool]:
    """Currency and item ids → bought with real money (``paid: true``)."""
    out = {k: bool(v.get("paid", False)) for k, v in d.get("items", {}).items()}
    out.update({k: bool(v.get("paid", False)) for k, v in d.get("currencies", {}).items()})
    return out
