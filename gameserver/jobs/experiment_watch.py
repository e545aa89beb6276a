"""Experiment notices: tell the merchant's backend when to read a result, and when not to
trust one, through the webhook outbox (``gameserver/jobs/webhooks.py``).

A fixed-horizon test is read once, at its horizon (docs/experiments.md): rather than
have merchants poll the results (and peek), a background pass looks at every running
experiment of every live game and emits

- ``experiment.horizon_reached`` once every arm has ``sample_size`` exposed shoppers;
- ``experiment.sample_ratio_mismatch`` when the exposed counts fail the χ² check
  against the allocation (p < 0.001): assignment or exposure is broken somewhere.

Each event's key names the experiment and its salt (a new experiment under an old id
notifies again), so a pass that runs twice (two hosts, a retried pass) stores each event
once; the pass runs under a lease anyway, every ``interval`` (10 min).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from economy.abstats import sample_ratio
from economy.experiments import Experiment
from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.jobs.periodic import PeriodicTask
from gameserver.jobs.webhooks import Outbox

HORIZON = "experiment.horizon_reached"
MISMATCH = "experiment.sample_ratio_mismatch"


async def exposed_counts(db: Database, merchant: str, game: str,
                         exp: Experiment) -> dict[str, int]:
    """Exposed shoppers per arm (every arm listed, 0 when none)."""
    x = m.experiment_exposures
    async with db.connect() as conn:
        rows = (await conn.execute(select(x.c.arm, func.count()).where(
            x.c.merchant_id == merchant, x.c.game_id == game, x.c.experiment == exp.id)
            .group_by(x.c.arm))).all()
    got = {str(arm): int(n) for arm, n in rows}
    return {arm: got.get(arm, 0) for arm in exp.arms}


def notices(game: str, exp: Experiment,
            exposed: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(event, key, data)`` of what ``exposed`` calls for (pure). The key names the
    game: the outbox stores a key once per merchant, and two games of one merchant may
    run the same experiment (a copied config)."""
    base = f"experiment:{game}:{exp.id}:{exp.salt}"
    data: dict[str, Any] = {"experiment": exp.id, "exposed": exposed,
                            "sample_size": exp.sample_size, "primary": exp.primary}
    out: list[tuple[str, str, dict[str, Any]]] = []
    if exposed and all(n >= exp.sample_size for n in exposed.values()):
        out.append((HORIZON, f"{base}:horizon", data))
    shares = exp.shares()
    check = sample_ratio([exposed[a] for a in exp.arms], [shares[a] for a in exp.arms])
    if check is not None and check.mismatch:
        out.append((MISMATCH, f"{base}:srm", data | {"sample_ratio": check.to_json()}))
    return out


async def watch_experiments(db: Database, games: GameRegistry, outbox: Outbox,
                            now: int) -> int:
    """One pass over every running experiment of every live game; returns events stored."""
    stored = 0
    for (merchant, game), version in sorted((await db.live_versions()).items()):
        live = await games.version(merchant, game, version)
        for exp in live.config.experiments.values():
            if not exp.running(now):
                continue
            exposed = await exposed_counts(db, merchant, game, exp)
            for event, key, data in notices(game, exp, exposed):
                stored += await outbox.emit(merchant=merchant, game=game, event=event,
                                            key=key, data=data)
    return stored


class ExperimentWatcher(PeriodicTask):
    """Runs :func:`watch_experiments` every ``interval`` seconds until stopped."""

    name = "petbox-experiments"

    def __init__(self, db: Database, games: GameRegistry, outbox: Outbox, clock: Clock,
                 interval: float = 600.0) -> None:
        super().__init__(interval)
        self.db, self.games, self.outbox, self.clock = db, games, outbox, clock

    async def run_once(self) -> int:
        return await watch_experiments(self.db, self.games, self.outbox,
                                       int(self.clock.now()))
