"""Typed keys of the resources an app holds (opened and closed in ``cleanup_ctx``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.asyncio import Redis

from gameserver.clock import Clock
from gameserver.db.admin_requests import AdminRequests
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.http.auth import TokenSigner
from gameserver.merchants import MerchantDirectory
from gameserver.ops.metrics import METRICS
from gameserver.ops.settings import Settings
from gameserver.services import Services
from gameserver.state.batching import ScriptBatcher
from gameserver.state.keys import Keys
from gameserver.state.store import Store
from gameserver.state.value import ValueTier

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
KEYS = web.AppKey("keys", Keys)
REDIS = web.AppKey("redis", Redis)
BATCHER = web.AppKey("batcher", ScriptBatcher)
"""Pipelines the action path's Lua calls on ``REDIS`` (gameserver/state/batching.py)."""
DB = web.AppKey("db", Database)
STORE = web.AppKey("store", Store)
GAMES = web.AppKey("games", GameRegistry)
SIGNER = web.AppKey("signer", TokenSigner)
MERCHANTS = web.AppKey("merchants", MerchantDirectory)
VALUE = web.AppKey("value", ValueTier)
SERVICES = web.AppKey("services", Services)
SHADOW = web.AppKey("shadow", Services)
"""Present only when a shadow database is configured (load-test traffic)."""
SHADOW_DB = web.AppKey("shadow_db", Database)
ADMIN_REQUESTS = web.AppKey("admin_requests", AdminRequests)
"""Idempotency-Keys of merchant writes (SQL, ``admin_requests``)."""
BACKLOG_GAUGES: web.AppKey[Callable[[], Awaitable[object]]] = web.AppKey("backlog_gauges")
"""Present only when the persister runs in another process: sets the persister's backlog
gauges from Redis, for ``/metrics`` to call on each scrape."""

__all__ = ["ADMIN_REQUESTS", "BACKLOG_GAUGES", "BATCHER", "CLOCK", "DB", "GAMES", "KEYS",
           "MERCHANTS", "METRICS", "REDIS", "SERVICES", "SETTINGS", "SHADOW", "SHADOW_DB",
           "SIGNER", "STORE", "VALUE"]
