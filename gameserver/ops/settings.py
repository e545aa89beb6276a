"""Settings: every ``PETBOX_*`` environment variable, read once into one typed object.

Validated at start-up (a bad value stops the server with a message naming the
variable) and passed explicitly. Two variables are read where they are used instead:
``PETBOX_REDIS_SERVER`` (the embedded Redis's binary, gameserver/ops/embedded.py) and
the tests' ``PETBOX_TEST_FAILPOINT`` (gameserver/state/aggregates_gate.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from gameserver.http.rates import (
    DRAW_DEFAULT,
    EVENTS_DEFAULT,
    IP_DEFAULT,
    MERCHANT_AUTH_DEFAULT,
    MERCHANT_DEFAULT,
    PLAYER_DEFAULT,
    RateLimit,
    parse_rate,
)
from gameserver.state.keys import DEFAULT_SHARDS


class SettingsError(ValueError):
    """A ``PETBOX_*`` variable with a value petbox cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a petbox process."""

    redis_url: str | None = None
    """None: start an embedded redis-server in the data dir."""
    redis_cluster: str = "auto"
    """``auto``: ask the node at ``redis_url`` (``INFO cluster``) whether it is part of a
    Redis Cluster and, if so, use the whole cluster; ``on``/``off`` force the mode."""
    database_url: str | None = None
    """None: SQLite file in the data dir."""
    data_dir: Path = Path("petbox-data")
    flush_interval: float = 1.0
    """Seconds between persister passes (also the play-state loss window without AOF)."""
    shards: int = DEFAULT_SHARDS
    """Logical shards (Redis hash tags), fixed for the life of a deployment's data
    (recorded in SQL at the first start: gameserver/ops/shardcount.py)."""
    shards_explicit: bool = True
    """``shards`` was asked for (``PETBOX_SHARDS`` set): a start refuses data written
    with another count. False: the data's recorded count is used instead."""
    token_secret: str = ""
    """HMAC key of player tokens; shared by every server process."""
    token_ttl: int = 7200
    session_skew: int = 600
    """createSession accepts ``ts`` within this many seconds of server time."""
    client_max_size: int = 64 * 1024
    """Largest request body, bytes (``PETBOX_MAX_BODY``), on every route but the config
    writes: a shopper request is a few hundred bytes, so a midnight's walls cannot make
    the server buffer megabytes each."""
    config_max_size: int = 2 * 1024 * 1024
    """Largest body of a config write, bytes (``PETBOX_MAX_CONFIG_BODY``): ``putGameDraft``
    and ``putExperiment`` (whose overrides may replace whole sections). 1,000 items alone
    are about 175 KB; every top-level list of the schema at its longest (one entry in each
    list inside), about 1.5 MB."""
    idempotency_ttl: int = 86400
    idempotency_wait: float = 2.0
    """How long a duplicate waits for the first request with its key before 409."""
    commit_retries: int = 8
    idle_evict_after: int = 3600
    """Seconds a flushed player stays in Redis after its last action."""
    persister_batch: int = 2000
    persister_nice: int = 10
    """Niceness of the persister process under ``serve --workers N``: write-behind
    yields the CPU to request handling (its backlog waits in Redis), 0 = equal."""
    run_persister: bool = True
    persister_metrics_port: int = 0
    """Where a persister process of its own (``petbox persister``, and the one of
    ``serve --workers N``) serves its ``/metrics``: its pass counters and its flush
    hooks' kept work live in that process only. 0: not served."""
    persister_metrics_host: str = "127.0.0.1"
    run_background: bool = True
    """Reconciler, reminder delivery and retention in this process (one per deployment
    is enough; several are safe)."""
    shadow_database_url: str | None = None
    """Shadow (load-test) SQL; default: beside an embedded/SQLite database, else disabled."""
    record_dir: Path | None = None
    """Record sampled shopper traffic into load-test traces here (off when None)."""
    record_sample: float = 0.01
    record_max_bytes: int = 64 << 20
    record_max_files: int = 8
    redis_timeout: float = 2.0
    """Bound of every Redis call (connect, each reply, the wait for a pooled connection),
    seconds (``PETBOX_REDIS_TIMEOUT``): past it the request answers 503 with Retry-After."""
    sql_timeout: float = 1.5
    """Bound of one SQL call made while a client waits (checkout, statements, commit):
    past it the request answers 503 with Retry-After, whatever SQL is doing."""
    sql_background_timeout: float = 10.0
    """Bound of one SQL call of a background job (persister, reconciler, housekeeping),
    and the driver-level backstop of every call (connect, pool, statement, SQLite busy)."""
    sql_report_timeout: float = 5.0
    """Bound of one merchant report's SQL (analytics, experiment results): several
    aggregate queries over a game's events, so a big shop's report still answers
    where the shopper bound would turn it into a 503 that no retry can cure."""
    migrate_timeout: float | None = None
    migrate_lock_timeout: float = 1.0
    migrate_wait: float = 600.0
    """`petbox migrate`'s own bounds (gameserver/db/migrating.py): a statement's run (None:
    unbounded), a statement's wait for another transaction's lock, the wait for another
    migrate's migration lock; the serving ones above would cut a long index build."""
    secret_cache_seconds: float = 300.0
    """How long a merchant's signing secret read from SQL is used without asking again;
    a rotated or revoked secret takes effect within this."""
    secret_cache_max_age: float = 3600.0
    """While SQL cannot be read, a cached signing secret up to this old still signs
    shoppers in (createSession, order events); older ones are not used."""
    redis_appendfsync: str = "everysec"
    redis_aof_rewrite_percentage: int = 400
    """Embedded Redis: rewrite the AOF when it grew by this many per cent. A rewrite
    forks and serialises the whole dataset (the 24 h of idempotency records grow with
    every action), so its amortised cost per action falls as 1/percentage; the price is
    an AOF of up to (1 + percentage/100) times the dataset on disk and a longer replay
    at restart (Redis' own default is 100)."""
    event_loop: str = "asyncio"
    """``asyncio`` or ``uvloop`` (needs the ``fast`` extra) for ``serve`` and the persister."""
    redis_pipelining: bool = True
    """Send the action path's Lua calls of one loop turn as one pipeline
    (gameserver/state/batching.py); off = one round trip per call."""
    redis_pipeline_in_flight: int = 2
    """Pipelines a process may have waiting for Redis at once; fewer = bigger batches."""
    redis_pipeline_linger: float = 0.005
    """Longest a Lua call waits for others to join its pipeline under load (0: never);
    see ``ScriptBatcher.linger``."""
    latency_target: float = 0.0
    """A p99 the requests may be slowed to, seconds, so that Lua calls wait for company
    while the requests are fast (gameserver/state/latency_budget.py; 0: only under load)."""
    state_cache: int | None = None
    """Player states a process keeps as it last committed them, so an action on one
    skips its load round trip (0: off; gameserver/state/statecache.py). None (unset): 10,000
    when one process serves, off under ``serve --workers N``: there a shopper's next
    request reaches another worker about half the time, that worker's copy is stale,
    and the bench measured no gain (docs/benchmarks.md); set it when a load balancer
    routes each shopper to one process."""
    rate_player: RateLimit | None = None
    """Per-player limit on shopper routes (None: off; ``load_settings`` defaults to 20/s,
    burst 40)."""
    rate_ip: RateLimit | None = None
    """Per-client-IP limit on shopper routes (``load_settings``: 200/s, burst 400)."""
    rate_draw: RateLimit | None = None
    """Per-player limit on drawBox (``load_settings``: 5/s, burst 10)."""
    rate_merchant: RateLimit | None = None
    """Per-merchant limit on merchant routes (``/v1/admin/``), keyed by the merchant
    its API key authenticates (``load_settings``: 50/s, burst 200)."""
    rate_merchant_auth: RateLimit | None = None
    """Per-client-IP limit on failed merchant authentication (a wrong API key or event
    signature: a 401 on ``/v1/admin/`` or ``/v1/events/``; ``load_settings``: 1/s,
    burst 20). Once spent, every merchant request from that IP waits."""
    rate_events: RateLimit | None = None
    """Per-merchant limit on signed merchant events (``/v1/events/``), keyed by the
    verified signer; generous, since a refused paid order is retried by the merchant
    (``load_settings``: 500/s, burst 10,000)."""
    rate_shared: bool = False
    """Rate budgets in Redis, exact across processes (one more round trip per request);
    by default each process keeps its own budgets in memory."""
    reconcile_interval: float = 30.0
    """Seconds between settlements of pending value grants left by crashes."""
    hold_ttl: float = 30.0
    """Seconds a stock gate reservation may stay unsettled against SQL before the
    reconciler gives its units back (``PETBOX_HOLD_TTL``): a gate and SQL agree again
    within this plus ``reconcile_interval`` after a crash mid-grant. Must exceed
    ``sql_timeout`` + ``sql_pool_timeout`` (a grant's longest SQL try): a grant still
    running must never be taken for a dead one."""
    stock_buckets: int = 8
    """Buckets (slots) each game's limited-stock gate is split into
    (``PETBOX_STOCK_BUCKETS``); every host must use the same count."""
    owed_after: float = 5.0
    """Seconds after which a shopper commit a gate recorded and no request finished
    (a crash between the two commits) is applied by the owed reconciler."""
    erase_wait: float = 10.0
    """``erasePlayer``: longest wait for the persister to settle the shopper (409 after)."""
    erase_tombstone: float = 600.0
    """``erasePlayer``: seconds an erased shopper's actions are refused (``player_erased``)."""
    max_inflight: int = 256
    """Admission control: requests one process works on at once (health, readiness,
    metrics and the OpenAPI document are never counted); 0 = no admission control."""
    max_queued: int = 1024
    """Requests beyond ``max_inflight`` that may wait for a slot; beyond that:
    ``503 overloaded`` with ``Retry-After`` at once."""
    queue_wait: float = 5.0
    """Longest a request waits in that queue before ``503 overloaded``."""
    body_wait: float = 10.0
    """Longest a request's body may take to arrive, waited for before the request is
    admitted (so a client trickling bodies holds no slot); past it ``400 body_timeout``."""
    redis_max_connections: int = 0
    """Redis connections of one process (0: ``max_inflight`` + 64, for the pipelines,
    the persister and background jobs). Never below ``max_inflight``: a request that
    finds them all busy waits up to ``redis_timeout`` for one, then 503."""
    sql_pool_size: int = 10
    sql_max_overflow: int = 20
    sql_pool_timeout: float = 5.0
    """Longest a request waits for a SQL connection before 503 (admitted requests
    queue for the SQL pool rather than open one connection each)."""
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    """Load balancers whose ``X-Forwarded-For`` names the client
    (``PETBOX_TRUSTED_PROXIES``; gameserver/http/clientip.py)."""
    log_level: str = "INFO"
    access_log: bool = True
    partial_refunds: bool = False
    """Accept partial refunds (``ingestOrder`` with ``refund_id``;
    ``PETBOX_PARTIAL_REFUNDS``). Off until every host runs a release that knows them: an
    older host would write a shopper's state back without their refunds, losing them."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def effective_redis_max_connections(self) -> int:
        if self.redis_max_connections:
            return self.redis_max_connections
        return max(self.max_inflight, 256) + 64

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'petbox.db').as_posix()}"

    @property
    def effective_shadow_database_url(self) -> str | None:
        default = f"sqlite+aiosqlite:///{(self.data_dir / 'petbox-shadow.db').as_posix()}"
        return shadow_database_url(self.database_url, self.shadow_database_url, default)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _num(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {raw}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """A whole number in ``lo..hi`` (``1.5`` is refused, not cut to 1)."""
    value = _num(env, name, default, lo, hi)
    if not float(value).is_integer():
        raise SettingsError(f"{name} must be a whole number, got {env.get(name)}")
    return int(value)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _cluster_mode(env: Mapping[str, str]) -> str:
    """``PETBOX_REDIS_CLUSTER``: ``auto`` (default), or a boolean forcing the mode."""
    raw = env.get("PETBOX_REDIS_CLUSTER", "")
    if raw.lower() in ("", "auto"):
        return "auto"
    try:
        return "on" if _bool(env, "PETBOX_REDIS_CLUSTER", False) else "off"
    except SettingsError:
        raise SettingsError(f"PETBOX_REDIS_CLUSTER must be auto, 1 or 0, got {raw!r}") from None


def _rate(env: Mapping[str, str], name: str, default: RateLimit | None) -> RateLimit | None:
    try:
        return parse_rate(name, env.get(name), default)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc


def _token_secret(env: Mapping[str, str], data_dir: Path) -> str:
    """The configured secret, or one kept in the data dir so restarts keep tokens valid."""
    secret = env.get("PETBOX_TOKEN_SECRET", "")
    if secret:
        if len(secret) < 16:
            raise SettingsError("PETBOX_TOKEN_SECRET must be at least 16 characters")
        return secret
    path = data_dir / "token-secret"
    try:
        if path.exists():
            return path.read_text().strip()
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_hex(32)
        path.write_text(secret)
        path.chmod(0o600)
    except OSError as exc:  # a file in its place, no permission, a read-only disk
        raise SettingsError(f"the data directory {str(data_dir)!r} cannot hold the token "
                            f"secret: {exc.strerror or exc}") from exc
    return secret


def _database_url(env: Mapping[str, str], name: str) -> str | None:
    """A SQLAlchemy URL with an async driver, or None when unset."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    raw = env.get(name) or None
    if raw is None:
        return None
    example = "(e.g. postgresql+asyncpg://user@host/db, sqlite+aiosqlite:///file.db)"
    try:
        url = make_url(raw)
        dialect = url.get_dialect()
    except NoSuchModuleError:  # before its base class, ArgumentError
        raise SettingsError(f"{name} names an unknown database driver "
                            f"{make_url(raw).drivername!r} {example}") from None
    except ArgumentError:
        raise SettingsError(f"{name} is not a database URL {example}") from None
    if not getattr(dialect, "is_async", False):
        raise SettingsError(f"{name} needs an async driver {example}, "
                            f"got {url.drivername!r}")
    return raw


def _redis_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("PETBOX_REDIS_URL") or None
    if raw is not None and not raw.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("PETBOX_REDIS_URL must start with redis://, rediss:// or unix://")
    return raw


def _log_level(env: Mapping[str, str]) -> str:
    import logging

    level = env.get("PETBOX_LOG_LEVEL", "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        raise SettingsError("PETBOX_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _event_loop(env: Mapping[str, str]) -> str:
    name = env.get("PETBOX_EVENT_LOOP", "asyncio")
    if name not in ("asyncio", "uvloop"):
        raise SettingsError("PETBOX_EVENT_LOOP must be asyncio or uvloop")
    if name == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError as exc:
            raise SettingsError("PETBOX_EVENT_LOOP=uvloop needs uvloop: "
                                "pip install 'petbox[fast]'") from exc
    return name


def _admission(env: Mapping[str, str]) -> dict[str, Any]:
    """Admission and pool bounds; a Redis pool smaller than what is admitted is refused."""
    inflight = _int(env, "PETBOX_MAX_INFLIGHT", 256, 0, 100_000)
    pool = _int(env, "PETBOX_REDIS_MAX_CONNECTIONS", 0, 0, 100_000)
    if pool and pool < inflight + 8:
        raise SettingsError(f"PETBOX_REDIS_MAX_CONNECTIONS ({pool}) must be at least "
                            f"PETBOX_MAX_INFLIGHT + 8 ({inflight + 8})")
    return {
        "max_inflight": inflight,
        "max_queued": _int(env, "PETBOX_MAX_QUEUED", 1024, 0, 1_000_000),
        "queue_wait": _num(env, "PETBOX_QUEUE_WAIT", 5.0, 0.0, 60.0),
        "body_wait": _num(env, "PETBOX_BODY_WAIT", 10.0, 0.05, 600.0),
        "redis_max_connections": pool,
        "sql_pool_size": _int(env, "PETBOX_SQL_POOL_SIZE", 10, 1, 1000),
        "sql_max_overflow": _int(env, "PETBOX_SQL_MAX_OVERFLOW", 20, 0, 1000),
        "sql_pool_timeout": _num(env, "PETBOX_SQL_POOL_TIMEOUT", 5.0, 0.1, 60.0),
        "trusted_proxies": _trusted_proxies(env),
    }


def _trusted_proxies(env: Mapping[str, str]) -> tuple[IPv4Network | IPv6Network, ...]:
    """``PETBOX_TRUSTED_PROXIES``: ``10.0.0.0/8, 192.0.2.7, fd00::/8`` as networks."""
    out = []
    for item in env.get("PETBOX_TRUSTED_PROXIES", "").split(","):
        if not item.strip():
            continue
        try:
            out.append(ip_network(item.strip(), strict=False))
        except ValueError:
            raise SettingsError("PETBOX_TRUSTED_PROXIES must list IP addresses or "
                                f"networks, got {item.strip()!r}") from None
    return tuple(out)


def _hold_ttl(env: Mapping[str, str]) -> float:
    """A grant's SQL try may wait its turn for a connection, then run: its hold must
    outlive both, or a live grant could be taken for a dead one."""
    longest = (_num(env, "PETBOX_SQL_TIMEOUT", 1.5, 0.05, 600)
               + _num(env, "PETBOX_SQL_POOL_TIMEOUT", 5.0, 0.1, 60.0))
    ttl = _num(env, "PETBOX_HOLD_TTL", 30.0, 0.1, 86400)
    if ttl <= longest:
        raise SettingsError(f"PETBOX_HOLD_TTL ({ttl:g}) must be more than PETBOX_SQL_TIMEOUT "
                            f"+ PETBOX_SQL_POOL_TIMEOUT ({longest:g})")
    return ttl


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("PETBOX_DATA_DIR") or "petbox-data")
    fsync = env.get("PETBOX_REDIS_APPENDFSYNC", "everysec")
    if fsync not in ("always", "everysec", "no"):
        raise SettingsError("PETBOX_REDIS_APPENDFSYNC must be always, everysec or no")
    secret_fresh = _num(env, "PETBOX_SECRET_CACHE_SECONDS", 300, 0, 86400)
    body = _int(env, "PETBOX_MAX_BODY", 64 << 10, 1024, 16 << 20)
    return Settings(
        redis_url=_redis_url(env),
        redis_cluster=_cluster_mode(env),
        database_url=_database_url(env, "PETBOX_DATABASE_URL"),
        shadow_database_url=_database_url(env, "PETBOX_SHADOW_DATABASE_URL"),
        record_dir=Path(env["PETBOX_RECORD_DIR"]) if env.get("PETBOX_RECORD_DIR") else None,
        record_sample=_num(env, "PETBOX_RECORD_SAMPLE", 0.01, 0.0, 1.0),
        record_max_bytes=_int(env, "PETBOX_RECORD_MAX_MB", 64, 1, 10_000) << 20,
        record_max_files=_int(env, "PETBOX_RECORD_MAX_FILES", 8, 1, 1000),
        data_dir=data_dir,
        flush_interval=_num(env, "PETBOX_FLUSH_INTERVAL", 1.0, 0.05, 3600),
        shards=_int(env, "PETBOX_SHARDS", DEFAULT_SHARDS, 1, 16384),
        shards_explicit=bool(env.get("PETBOX_SHARDS")),
        token_secret=_token_secret(env, data_dir),
        token_ttl=_int(env, "PETBOX_TOKEN_TTL", 7200, 60, 30 * 86400),
        client_max_size=body,
        config_max_size=_int(env, "PETBOX_MAX_CONFIG_BODY", max(2 << 20, body), body,
                             64 << 20),
        idempotency_ttl=_int(env, "PETBOX_IDEMPOTENCY_TTL", 86400, 86400, 30 * 86400),
        idle_evict_after=_int(env, "PETBOX_IDLE_EVICT_AFTER", 3600, 1, 30 * 86400),
        run_persister=_bool(env, "PETBOX_RUN_PERSISTER", True),
        persister_nice=_int(env, "PETBOX_PERSISTER_NICE", 10, 0, 19),
        persister_metrics_port=_int(env, "PETBOX_PERSISTER_METRICS_PORT", 0, 0, 65535),
        persister_metrics_host=env.get("PETBOX_PERSISTER_METRICS_HOST") or "127.0.0.1",
        redis_pipelining=_bool(env, "PETBOX_REDIS_PIPELINING", True),
        redis_pipeline_in_flight=_int(env, "PETBOX_REDIS_PIPELINE_IN_FLIGHT", 2, 1, 64),
        redis_pipeline_linger=_num(env, "PETBOX_REDIS_PIPELINE_LINGER_US", 5000, 0, 50_000) / 1e6,
        latency_target=_num(env, "PETBOX_LATENCY_TARGET_MS", 0, 0, 10_000) / 1e3,
        state_cache=(_int(env, "PETBOX_STATE_CACHE", 10_000, 0, 1_000_000)
                     if env.get("PETBOX_STATE_CACHE") else None),
        event_loop=_event_loop(env),
        run_background=_bool(env, "PETBOX_RUN_BACKGROUND", True),
        redis_appendfsync=fsync,
        redis_aof_rewrite_percentage=_int(env, "PETBOX_REDIS_AOF_REWRITE_PERCENTAGE", 400,
                                              10, 10_000),
        rate_player=_rate(env, "PETBOX_RATE_PLAYER", PLAYER_DEFAULT),
        rate_ip=_rate(env, "PETBOX_RATE_IP", IP_DEFAULT),
        rate_draw=_rate(env, "PETBOX_RATE_DRAW", DRAW_DEFAULT),
        rate_merchant=_rate(env, "PETBOX_RATE_MERCHANT", MERCHANT_DEFAULT),
        rate_merchant_auth=_rate(env, "PETBOX_RATE_MERCHANT_AUTH", MERCHANT_AUTH_DEFAULT),
        rate_events=_rate(env, "PETBOX_RATE_EVENTS", EVENTS_DEFAULT),
        rate_shared=_bool(env, "PETBOX_RATE_SHARED", False),
        redis_timeout=_num(env, "PETBOX_REDIS_TIMEOUT", 2.0, 0.05, 600),
        sql_timeout=_num(env, "PETBOX_SQL_TIMEOUT", 1.5, 0.05, 600),
        sql_background_timeout=_num(env, "PETBOX_SQL_BACKGROUND_TIMEOUT", 10.0, 0.05, 3600),
        sql_report_timeout=_num(env, "PETBOX_SQL_REPORT_TIMEOUT", 5.0, 0.05, 600),
        migrate_timeout=_num(env, "PETBOX_MIGRATE_TIMEOUT", 0.0, 0.0, 86400) or None,
        migrate_lock_timeout=_num(env, "PETBOX_MIGRATE_LOCK_TIMEOUT", 1.0, 0.05, 3600),
        migrate_wait=_num(env, "PETBOX_MIGRATE_WAIT", 600.0, 0.05, 86400),
        secret_cache_seconds=secret_fresh,
        secret_cache_max_age=_num(env, "PETBOX_SECRET_CACHE_MAX_AGE", 3600, secret_fresh,
                                  7 * 86400),
        reconcile_interval=_num(env, "PETBOX_RECONCILE_INTERVAL", 30.0, 0.05, 86400),
        hold_ttl=_hold_ttl(env),
        stock_buckets=_int(env, "PETBOX_STOCK_BUCKETS", 8, 1, 1024),
        owed_after=_num(env, "PETBOX_OWED_AFTER", 5.0, 0.05, 3600),
        erase_wait=_num(env, "PETBOX_ERASE_WAIT", 10.0, 0.05, 600),
        erase_tombstone=_num(env, "PETBOX_ERASE_TOMBSTONE", 600.0, 0.05, 86400),
        **_admission(env),
        log_level=_log_level(env),
        access_log=_bool(env, "PETBOX_ACCESS_LOG", True),
        partial_refunds=_bool(env, "PETBOX_PARTIAL_REFUNDS", False),
    )


def shadow_database_url(database_url: str | None, explicit: str | None,
                        default_sqlite: str) -> str | None:
    """Where shadow rows go: the explicit URL; beside a SQLite database; else nowhere.

    PostgreSQL deployments name a shadow database explicitly (a second database on
    the same server is the usual choice) — petbox never guesses one.
    """
    if explicit:
        return explicit
    if database_url is None:
        return default_sqlite
    if database_url.startswith("sqlite") and database_url.endswith(".db"):
        return database_url[:-3] + "-shadow.db"
    return None
