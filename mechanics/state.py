"""Player state as rules see it, and its compact msgpack wire form.

The wire form is what Redis and the SQL ``players.state`` column hold. Fields
added later get defaults in :meth:`PlayerState.from_wire`, so a state written by
an older server version still loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mechanics.boxstate import BoxState
from mechanics.loopstate import CheckinState, OrderRecord, TaskProgress, wire_map


class Rng(Protocol):
    """The randomness a rule may use; the server passes a seeded generator."""

    def random(self) -> float: ...

    def randrange(self, start: int, stop: int) -> int: ...


@dataclass
class PetState:
    """A pet; ``stats`` are milli-points as of ``at`` (decay is applied lazily)."""

    species: str
    name: str
    stats: dict[str, int]
    at: int
    xp: int
    adopted_at: int
    stage: int = 0
    """how many growth stages were reached (their rewards granted)"""
    produce_milli: int = 0
    """uncollected produce in milli-units, banked as of ``at``"""

    def copy(self) -> PetState:
        return PetState(self.species, self.name, dict(self.stats), self.at, self.xp,
                        self.adopted_at, self.stage, self.produce_milli)

    def to_wire(self) -> dict[str, Any]:
        return {"sp": self.species, "n": self.name, "st": self.stats, "at": self.at,
                "xp": self.xp, "ad": self.adopted_at, "sg": self.stage,
                "pr": self.produce_milli}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> PetState:
        return cls(species=raw["sp"], name=raw["n"], stats=dict(raw["st"]), at=raw["at"],
                   xp=raw["xp"], adopted_at=raw["ad"], stage=raw.get("sg", 0),
                   produce_milli=raw.get("pr", 0))


@dataclass
class PlayerState:
    """Everything a player has in one game."""

    created_at: int
    wallet: dict[str, int] = field(default_factory=dict)
    inventory: dict[str, int] = field(default_factory=dict)
    pet: PetState | None = None
    cooldowns: dict[str, int] = field(default_factory=dict)
    """action key → unix second it is ready again."""
    last_seen: int = 0
    checkin: CheckinState = field(default_factory=CheckinState)
    tasks: dict[str, TaskProgress] = field(default_factory=dict)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    """order id → record, for idempotency and refunds (bounded by age and count)"""
    debts: dict[str, int] = field(default_factory=dict)
    """``currency:<id>`` / ``item:<id>`` / ``coupon:<id>`` → what a refund could not take back"""
    exchanges: dict[str, list[int]] = field(default_factory=dict)
    """offer → [period, exchanges in it]"""
    reminded: list[list[Any]] = field(default_factory=list)
    """recent reminders sent: [kind, unix s]"""
    boxes: BoxState = field(default_factory=BoxState)
    """blind boxes: committed server seed, nonce, pity and counts per series"""

    def to_wire(self) -> dict[str, Any]:
        return {
            "c": self.created_at,
            "w": self.wallet,
            "i": self.inventory,
            "p": self.pet.to_wire() if self.pet else None,
            "cd": self.cooldowns,
            "ls": self.last_seen,
            "ck": self.checkin.to_wire(),
            "tk": wire_map(self.tasks),
            "od": wire_map(self.orders),
            "db": self.debts,
            "ex": self.exchanges,
            "rm": self.reminded,
            "bx": self.boxes.to_wire(),
        }

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> PlayerState:
        pet = raw.get("p")
        return cls(
            created_at=raw["c"],
            wallet=dict(raw.get("w", {})),
            inventory=dict(raw.get("i", {})),
            pet=PetState.from_wire(pet) if pet else None,
            cooldowns=dict(raw.get("cd", {})),
            last_seen=raw.get("ls", 0),
            checkin=CheckinState.from_wire(raw.get("ck") or {}),
            tasks={k: TaskProgress.from_wire(v) for k, v in (raw.get("tk") or {}).items()},
            orders={k: OrderRecord.from_wire(v) for k, v in (raw.get("od") or {}).items()},
            debts=dict(raw.get("db") or {}),
            exchanges={k: list(v) for k, v in (raw.get("ex") or {}).items()},
            reminded=[list(r) for r in raw.get("rm") or []],
            boxes=BoxState.from_wire(raw.get("bx")),
        )

    def copy(self) -> PlayerState:
        """A deep copy for a rule to change; the loaded state stays as it was.

        Written out field by field: it is on every action's path, and this is about
        twice as fast as a wire round trip (and ten times ``copy.deepcopy``).
        ``tests/unit/test_state.py`` checks that every field is copied and that no
        mutable object is shared, so a new field cannot be forgotten here.
        """
        return PlayerState(
            self.created_at, dict(self.wallet), dict(self.inventory),
            self.pet.copy() if self.pet else None, dict(self.cooldowns), self.last_seen,
            self.checkin.copy(), {k: v.copy() for k, v in self.tasks.items()},
            {k: v.copy() for k, v in self.orders.items()}, dict(self.debts),
            {k: list(v) for k, v in self.exchanges.items()},
            [list(r) for r in self.reminded], self.boxes.copy())
