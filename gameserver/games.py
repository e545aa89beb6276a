"""Live game configs, cached per process and refreshed without a restart.

A published version is immutable, so each is parsed once and shared. Which
version is live is polled from SQL every ``poll_interval`` seconds (0.5 s), so a
publish or rollback on any process is served by every process within a second.
A request resolves its config once and finishes on it, even if a publish lands
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zoneinfo
from dataclasses import dataclass, field, replace
from functools import lru_cache
from zoneinfo import ZoneInfo

from economy.config import GameConfig, parse_game_config, value_totals
from economy.errors import NotFound
from economy.experiments import arm_config, choose
from gameserver.db.database import Database
from mechanics.state import PlayerState

log = logging.getLogger("petbox.games")


@lru_cache(maxsize=1)
def known_timezones() -> frozenset[str]:
    """IANA zone names from the tz database (read once)."""
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class LiveGame:
    """One published version of a game, parsed and ready for rules."""

    merchant: str
    game: str
    version: int
    config: GameConfig
    tz: ZoneInfo
    totals: dict[str, int] = field(default_factory=dict)
    """Limited refs → configured totals (:func:`economy.config.value_totals`: every
    mechanic's section names its own)."""
    arm: str | None = None
    """``<experiment>/<arm>`` when this is an experiment arm's merged config, else None."""
    _arms: dict[tuple[str, str], LiveGame] = field(default_factory=dict, repr=False,
                                                   compare=False)

    @property
    def arm_ids(self) -> tuple[str, str] | None:
        """``(experiment, arm)`` of an arm's game, else None."""
        if self.arm is None:
            return None
        experiment, _, arm = self.arm.partition("/")
        return experiment, arm

    def arm_for(self, user: str, state: PlayerState | None, now: int) -> LiveGame | None:
        """The arm's game that decides ``user``'s outcomes at ``now`` (None: the live
        config itself). Pure reads: the hash and what the state already holds."""
        if not self.config.experiments:
            return None
        choice = choose(self.config, user, state.experiments if state else {},
                        state.created_at if state else None, now)
        if choice is None:
            return None
        exp, arm = choice
        return self.arm_game(exp.id, arm)

    def arm_game(self, experiment: str, arm: str) -> LiveGame | None:
        """One arm's merged config as a game of the same version (built once)."""
        cached = self._arms.get((experiment, arm))
        if cached is None:
            config = arm_config(self.config, experiment, arm)
            if config is None:
                return None
            # the arm keeps the live config's experiments (its view shows the arm)
            config = replace(config, experiments=self.config.experiments)
            cached = replace(self, config=config, arm=f"{experiment}/{arm}", _arms={})
            self._arms[(experiment, arm)] = cached
        return cached


def parse_config(raw: object) -> GameConfig:
    """Validate a config with the real zone database; raises ConfigInvalid."""
    return parse_game_config(raw, known_timezones())


class GameRegistry:
    """(merchant, game) → the live :class:`LiveGame`, kept fresh by polling SQL."""

    def __init__(self, db: Database, poll_interval: float = 0.5) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self._live: dict[tuple[str, str], int] = {}
        self._parsed: dict[tuple[str, str, int], LiveGame] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, merchant: str, game: str) -> LiveGame:
        """The live version of ``game`` for ``merchant``; NotFound if none (or not theirs)."""
        version = self._live.get((merchant, game))
        if version is None:
            version = await self.db.live_version(merchant, game)
            if version is None:
                raise NotFound("game not found", game=game)
            self._live[(merchant, game)] = version
        return await self.version(merchant, game, version)

    async def version(self, merchant: str, game: str, version: int) -> LiveGame:
        """A specific published version (parsed once, then cached)."""
        key = (merchant, game, version)
        cached = self._parsed.get(key)
        if cached is not None:
            return cached
        row = await self.db.game_version(merchant, game, version)
        if row is None:
            raise NotFound("game version not found", game=game, version=version)
        config = parse_config(row.config)
        live = LiveGame(merchant, game, version, config, ZoneInfo(config.timezone),
                        value_totals(config))
        self._parsed[key] = live
        return live

    async def reload(self, merchant: str, game: str) -> None:
        """Re-read which version of one game is live (after this process published or
        rolled back: it serves the new version at once, not at its next poll)."""
        version = await self.db.live_version(merchant, game)
        if version is not None:
            self._live[(merchant, game)] = version

    async def refresh(self) -> None:
        """Re-read which versions are live (one small query for all games)."""
        self._live = await self.db.live_versions()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.refresh()
            except Exception:  # SQL down: keep serving the versions we know
                log.warning("could not refresh live game versions", exc_info=True)

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="petbox-game-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
