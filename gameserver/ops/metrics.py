"""Prometheus metrics of one petbox process, on a registry of its own.

A registry per app (not the global default) lets tests run several apps in one
process and keeps ``/metrics`` to what petbox itself measures.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The instruments petbox updates; one instance per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "petbox_request_seconds", "Request latency by operationId and status class",
            ["operation", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.commit_conflicts = Counter(
            "petbox_commit_conflicts_total", "Version conflicts retried by the store",
            registry=r)
        self.state_cache_hits = Counter(
            "petbox_state_cache_hits_total",
            "Actions that skipped their load: the player as this process last committed it",
            registry=r)
        self.state_cache_stale = Counter(
            "petbox_state_cache_stale_total",
            "Cached players the commit found changed (another process, or Redis lost them)",
            registry=r)
        self.commit_exhausted = Counter(
            "petbox_commit_exhausted_total", "Actions that gave up after all retries",
            registry=r)
        self.read_through = Counter(
            "petbox_read_through_total", "Player loads served from SQL after a Redis miss",
            registry=r)
        self.keys_from_sql = Counter(
            "petbox_idempotency_keys_from_sql_total",
            "Retries recognised from SQL after Redis no longer had their key (evicted "
            "player or lost data)", registry=r)
        self.flush_held_back = Counter(
            "petbox_persister_flush_held_back_total",
            "Dirty players not flushed in a pass because their last ledger entry was not "
            "in SQL yet", registry=r)
        self.idempotent_replays = Counter(
            "petbox_idempotent_replays_total", "Responses replayed for a repeated key",
            registry=r)
        self.persister_backlog = Gauge(
            "petbox_persister_backlog", "Work waiting for the persister", ["kind"], registry=r)
        self.persister_lag = Gauge(
            "petbox_persister_lag_seconds", "Age of the oldest unflushed dirty player",
            registry=r)
        self.persister_rows = Counter(
            "petbox_persister_rows_total", "Rows written to SQL by the persister", ["kind"],
            registry=r)
        self.persister_errors = Counter(
            "petbox_persister_errors_total",
            "Persister failures by stage (each failure once, whatever the shards it held up)",
            ["stage"],
            registry=r)
        self.flush_hook_pending = Gauge(
            "petbox_flush_hook_pending",
            "Reports a flush hook could not apply (its Redis node down) and keeps for its "
            "next call, by hook", ["hook"], registry=r)
        self.flush_hook_dropped = Counter(
            "petbox_flush_hook_dropped_total",
            "Kept reports a flush hook dropped unapplied because it kept its most already "
            "(the players' next flush repairs them), by hook", ["hook"], registry=r)
        self.evictions = Counter(
            "petbox_evictions_total", "Idle flushed players evicted from Redis", registry=r)
        self.owed_reconciled = Counter(
            "petbox_owed_reconciled_total",
            "Shopper commits a gate left owed (a crash between the two commits) that the "
            "owed reconciler handled, by outcome: applied, waiting, refused, failing",
            ["outcome"], registry=r)
        self.data_loss_detected = Counter(
            "petbox_redis_data_loss_total", "Times a shard's epoch key was found missing",
            registry=r)
        self.redis_node_up = Gauge(
            "petbox_redis_node_up", "1 when the Redis node (a cluster master, or the one "
            "server) serving some logical shards answered the last /readyz probe",
            ["node"], registry=r)
        self.redis_shards_down = Gauge(
            "petbox_redis_shards_down", "Logical shards whose Redis node failed the last "
            "/readyz probe", registry=r)
        self.admission_in_flight = Gauge(
            "petbox_admission_in_flight", "Requests admitted and being worked on", registry=r)
        self.admission_queued = Gauge(
            "petbox_admission_queued", "Requests waiting for an admission slot", registry=r)
        self.admission_rejected = Counter(
            "petbox_admission_rejected_total",
            "Requests refused with 503 overloaded, by reason (queue_full, queue_timeout)",
            ["reason"], registry=r)
        self.order_refunds_due = Counter(
            "petbox_order_refunds_due_total",
            "Parts of paid orders a play could not honour (ingestOrder's refund_due: the "
            "merchant must refund them), by kind and reason", ["kind", "reason"], registry=r)
        self._latency: dict[tuple[str, str], Any] = {}

    def observe_request(self, operation: str, status: int, seconds: float) -> None:
        """One request's latency under its operationId and status class (the labelled
        child is looked up once per pair, not per request: ``labels`` takes a lock)."""
        key = (operation, f"{status // 100}xx")
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = self.request_seconds.labels(*key)
        child.observe(seconds)


METRICS = web.AppKey("metrics", Metrics)


async def serve_metrics(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    """``GET /metrics`` of ``metrics`` on ``host:port``, for a process that serves no
    API (the persister of its own); stop it with the runner's ``cleanup``."""
    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
