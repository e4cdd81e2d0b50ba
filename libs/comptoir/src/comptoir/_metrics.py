"""Prometheus metrics every service gets from the chassis.

- HTTP: `comptoir_http_requests_total{service,method,route,status}` and
  `comptoir_http_request_duration_seconds{service,method,route}`, by URL
  *template* (`api/orders/<int:pk>/`), never the raw path.
- Database: `comptoir_db_queries_total{service,alias,statement}`.
- Celery: `comptoir_celery_tasks_total{service,task,outcome}` and
  `comptoir_celery_task_duration_seconds{service,task}`.
- Outbox (read from the database at scrape time): `comptoir_outbox_pending_messages`
  and `comptoir_outbox_oldest_pending_age_seconds` (0 when nothing waits), and
  `comptoir_outbox_quarantined` (rows the broker refused for good, out of the relay's way).
- Relay and consumers: `comptoir_outbox_relayed_total`, `comptoir_outbox_relay_failures_total`,
  `comptoir_consumer_messages_total{group,topic,outcome}`, `comptoir_consumer_lag{group,topic,partition}`,
  `comptoir_consumer_retries_total`, `comptoir_consumer_dead_letters_total`,
  `comptoir_dlq_messages{group,topic}`.
- A service's own values read at scrape time (order_service's saga backlog):
  the collectors it adds with `register_scrape_collector()`.
- Reconciliation: `comptoir_reconciliation_violations{service,kind}` (what the
  last run of the cross-service auditor found, per violation kind) and
  `comptoir_reconciliation_last_run_timestamp_seconds{service}`, through
  `reconciliation_reported()`.

Multiprocess mode: a server running several processes (gunicorn workers, the
Celery prefork pool) shares one `PROMETHEUS_MULTIPROC_DIR` per process group and
`/metrics` sums them. The devstack sets the folder per process; elsewhere
`comptoir.settings` picks one per gunicorn master / Celery worker (see
`_multiproc.ensure_multiprocess_dir`). Processes without a web server (relay, consumer,
Celery worker) serve the same text on `COMPTOIR_METRICS_PORT` / `--metrics-port`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._multiproc import MULTIPROC_ENV

logger = logging.getLogger("comptoir.metrics")

PORT_ENV = "COMPTOIR_METRICS_PORT"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


# ------------------------------------------------------------------ metrics

HTTP_REQUESTS = Counter(
    "comptoir_http_requests_total",
    "HTTP requests answered, by URL route template, method and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "comptoir_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL route template.",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
DB_QUERIES = Counter(
    "comptoir_db_queries_total",
    "SQL statements executed through Django, by database alias and statement kind.",
    ["service", "alias", "statement"],
)
CELERY_TASKS = Counter(
    "comptoir_celery_tasks_total",
    "Celery tasks finished, by task name and outcome (success, failure, retry).",
    ["service", "task", "outcome"],
)
CELERY_DURATION = Histogram(
    "comptoir_celery_task_duration_seconds",
    "Run time of Celery tasks.",
    ["service", "task"],
    buckets=(*LATENCY_BUCKETS, 30.0, 60.0),
)
RELAYED = Counter(
    "comptoir_outbox_relayed_total", "Outbox rows published to Kafka and acknowledged.", ["service", "topic"]
)
RELAY_FAILURES = Counter(
    "comptoir_outbox_relay_failures_total", "Outbox rows the broker did not acknowledge.", ["service"]
)
CONSUMED = Counter(
    "comptoir_consumer_messages_total",
    "Messages a consumer group processed, by outcome (handled, duplicate, skipped, failed).",
    ["service", "group", "topic", "outcome"],
)
RETRIES = Counter(
    "comptoir_consumer_retries_total",
    "Messages sent to a retry topic after a handler failure.",
    ["service", "group", "topic"],
)
DEAD_LETTERS = Counter(
    "comptoir_consumer_dead_letters_total",
    "Messages sent to a dead-letter topic.",
    ["service", "group", "topic"],
)
CONSUMER_LAG = Gauge(
    "comptoir_consumer_lag",
    "Messages not yet processed by the group, per partition (high watermark - position).",
    ["service", "group", "topic", "partition"],
    multiprocess_mode="livemax",
)
DLQ_MESSAGES = Gauge(
    "comptoir_dlq_messages",
    "Messages present on the dead-letter topic of a consumed topic (high - low watermark).",
    ["service", "group", "topic"],
    multiprocess_mode="livemax",
)
RECONCILIATION_VIOLATIONS = Gauge(
    "comptoir_reconciliation_violations",
    "Cross-service invariants broken, by kind, as the last reconciliation run found them.",
    ["service", "kind"],
    # Whichever worker process ran last speaks for the service, even once recycled.
    multiprocess_mode="mostrecent",
)
RECONCILIATION_LAST_RUN = Gauge(
    "comptoir_reconciliation_last_run_timestamp_seconds",
    "When the last reconciliation run finished (Unix time).",
    ["service"],
    multiprocess_mode="mostrecent",
)


def service_name() -> str:
    from django.conf import settings

    comptoir = getattr(settings, "COMPTOIR", {}) or {}
    return str(comptoir.get("SERVICE_NAME", "unknown"))


# ------------------------------------------------------- what services record


def reconciliation_reported(violations: Mapping[str, int]) -> None:
    """Records a finished reconciliation run: the count of each violation kind
    (every kind, zeros included, so a fixed violation stops alerting)."""
    service = service_name()
    for kind, count in violations.items():
        RECONCILIATION_VIOLATIONS.labels(service, kind).set(count)
    RECONCILIATION_LAST_RUN.labels(service).set(time.time())


_scrape_collectors: list[Collector] = []


def register_scrape_collector(collector: Collector) -> None:
    """Adds a collector of the service's own, read when `/metrics` is scraped, after
    the outbox's values (order_service's saga backlog)."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


# ------------------------------------------------- scrape-time collectors

# Quarantined rows (refused by the broker for good) wait for an operator, not the relay.
_OUTBOX_SQL = (
    "SELECT count(*) FILTER (WHERE quarantined_at IS NULL), "
    "COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE quarantined_at IS NULL)), 0), "
    "count(*) FILTER (WHERE quarantined_at IS NOT NULL) "
    "FROM comptoir_events_outboxmessage WHERE sent_at IS NULL"
)


class DatabaseCollector(Collector):
    """Values read from the service's database when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        service = service_name()
        pending = GaugeMetricFamily(
            "comptoir_outbox_pending_messages", "Outbox rows not yet published.", labels=["service"]
        )
        oldest = GaugeMetricFamily(
            "comptoir_outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none waits).",
            labels=["service"],
        )
        quarantined = GaugeMetricFamily(
            "comptoir_outbox_quarantined",
            "Outbox rows the broker refused for good, no longer relayed (an operator's to look at).",
            labels=["service"],
        )
        try:
            count, age, quarantined_count = _outbox_backlog()
        except Exception as error:  # noqa: BLE001 - a scrape must not fail on a database hiccup
            logger.warning("metrics: outbox backlog unavailable: %s", error)
        else:
            pending.add_metric([service], count)
            oldest.add_metric([service], age)
            quarantined.add_metric([service], quarantined_count)
            yield pending
            yield oldest
            yield quarantined
        for collector in _scrape_collectors:
            yield from collector.collect()


def _outbox_backlog() -> tuple[int, float, int]:
    from django.apps import apps
    from django.db import connection

    if not apps.is_installed("comptoir.events"):
        raise LookupError("comptoir.events is not installed")
    # Its own short transaction outside any request's: a scrape never joins one.
    with connection.cursor() as cursor:
        cursor.execute(_OUTBOX_SQL)
        row = cursor.fetchone()
    count, age, quarantined = row or (0, 0, 0)
    return int(count), float(age), int(quarantined)


_database_collector = DatabaseCollector()


def render(*, include_database: bool = True) -> tuple[bytes, str]:
    """The metrics text of this process group (aggregated in multiprocess mode)."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessRegistry())
    if include_database:
        registry.register(_database_collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _ProcessRegistry(Collector):
    """The default registry's metrics (this process), minus our database collector."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def metrics_view(request: Any) -> Any:
    """`GET /metrics` (added by `health_urlpatterns()`)."""
    from django.http import HttpResponse

    body, content_type = render()
    return HttpResponse(body, content_type=content_type)


# --------------------------------------------------------- instrumentation


class MetricsMiddleware:
    """Counts and times every request by the route template Django resolved."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.service = service_name()

    def __call__(self, request: Any) -> Any:
        began = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = int(response.status_code)
            return response
        finally:
            match = getattr(request, "resolver_match", None)
            route = _route_of(match)
            if route != "metrics":
                HTTP_REQUESTS.labels(self.service, request.method, route, str(status)).inc()
                HTTP_LATENCY.labels(self.service, request.method, route).observe(time.perf_counter() - began)


def _route_of(match: Any) -> str:
    if match is None:
        return "<unmatched>"
    route = getattr(match, "route", None)
    return str(route) if route else str(getattr(match, "view_name", "") or "<unnamed>")


STATEMENT_KINDS = ("select", "insert", "update", "delete")


def _statement(sql: str) -> str:
    word = sql.lstrip().split(None, 1)[0].lower() if sql.strip() else ""
    return word if word in STATEMENT_KINDS else "other"


def _count_queries(service: str, alias: str) -> Callable[..., Any]:
    # The connection's counters, looked up once (`labels` per statement costs
    # as much as the count itself).
    counters = {kind: DB_QUERIES.labels(service, alias, kind) for kind in (*STATEMENT_KINDS, "other")}

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        counters[_statement(sql)].inc()
        return execute(sql, params, many, context)

    return wrapper


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Counts (and traces) every statement of the connection, once per connection."""
    from ._tracing import trace_queries, tracing_sql

    if not any(getattr(w, "_comptoir_metrics", False) for w in connection.execute_wrappers):
        wrappers = [_count_queries(service_name(), connection.alias)]
        if tracing_sql():
            wrappers.append(trace_queries(connection.alias))
        for wrapper in wrappers:
            wrapper._comptoir_metrics = True  # type: ignore[attr-defined]
            connection.execute_wrappers.append(wrapper)


_task_started: dict[str, float] = {}
_task_lock = threading.Lock()


def _task_name(sender: Any, task: Any = None) -> str:
    return str(getattr(task or sender, "name", None) or sender or "unknown")


def _on_task_prerun(sender: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        with _task_lock:
            _task_started[task_id] = time.perf_counter()


def _on_task_postrun(
    sender: Any = None, task_id: str | None = None, state: str | None = None, **kwargs: Any
) -> None:
    task = _task_name(sender, kwargs.get("task"))
    with _task_lock:
        began = _task_started.pop(task_id or "", None)
    service = service_name()
    if began is not None:
        CELERY_DURATION.labels(service, task).observe(time.perf_counter() - began)
    outcome = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}.get(state or "", "other")
    CELERY_TASKS.labels(service, task, outcome).inc()


def _on_worker_ready(**kwargs: Any) -> None:
    port = os.environ.get(PORT_ENV)
    if port:
        serve_metrics(int(port))


def install() -> None:
    """Connects the signal-based instrumentation (called from the app's `ready()`)."""
    from celery import signals as celery_signals
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection_created, dispatch_uid="comptoir-metrics-db")
    celery_signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="comptoir-metrics-pre")
    celery_signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="comptoir-metrics-post")
    celery_signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="comptoir-metrics-port")
    # Connections opened before ready() (e.g. by a check) get the wrapper too.
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        _on_connection_created(None, connection)


_servers: dict[int, Any] = {}


def serve_metrics(port: int, *, host: str | None = None) -> None:
    """Serves this process group's metrics on `host:port` from a daemon thread (once per port).

    The database collector runs too, so a relay's endpoint shows its outbox."""
    if port in _servers:
        return
    bind = host or os.environ.get("COMPTOIR_METRICS_HOST", "127.0.0.1")
    registry = CollectorRegistry()
    registry.register(_RenderedCollector())
    server, _thread = start_http_server(port, addr=bind, registry=registry)
    _servers[port] = server
    logger.info("metrics on http://%s:%d/metrics", bind, port)


class _RenderedCollector(Collector):
    def collect(self) -> Iterator[Any]:
        if multiprocess_enabled():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        yield from _database_collector_in_thread()


# The metrics server answers each scrape on a new thread, and Django's database
# connections belong to a thread: read on the scrape's own thread, every scrape
# opened (and closed) a PostgreSQL connection, 3.5 ms of the server's CPU each.
# One long-lived thread reads them instead and keeps its connection as a request
# thread does (closed past CONN_MAX_AGE or when broken).
_database_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-database")
DATABASE_READ_TIMEOUT_S = 10.0


def _read_database() -> list[Any]:
    from django.db import close_old_connections

    close_old_connections()
    try:
        return list(_database_collector.collect())
    finally:
        close_old_connections()


def _database_collector_in_thread() -> Iterator[Any]:
    try:
        metrics = _database_reader.submit(_read_database).result(timeout=DATABASE_READ_TIMEOUT_S)
    except TimeoutError:
        logger.warning("metrics: the database values took over %.0f s; left out", DATABASE_READ_TIMEOUT_S)
        return
    yield from metrics
