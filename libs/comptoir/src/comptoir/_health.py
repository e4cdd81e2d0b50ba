"""Health: liveness says "my loop turns", readiness says "my dependencies answer".

Web processes serve `/health/live` (the process answers) and `/health/ready`:
one check per dependency the service declares in `COMPTOIR["HEALTH_CHECKS"]`
(database, redis, kafka) that a request needs, answering 503 naming the checks
that failed. Kafka is not one of them: a request writes its events to the
outbox, in its own database, so a broker outage must not take every web process
out of rotation; the relay publishes once the broker is back.

Processes without an HTTP port (relay, consumer, beat, worker) are probed by
`python -m comptoir.probe`: `live` reads the heartbeat file their loop touches
(`Heartbeat`), so a broker outage, which the loop survives, does not get them
restarted; `ready` runs the checks of what that process needs (`PROCESS_CHECKS`).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from ._kafka_security import kafka_client_config

CHECK_TIMEOUT_S = 2.0

_clients_lock = threading.Lock()
_kafka_admin: AdminClient | None = None
_redis: redis.Redis | None = None


def _check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    global _redis
    with _clients_lock:
        if _redis is None:
            _redis = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=CHECK_TIMEOUT_S,
                socket_connect_timeout=CHECK_TIMEOUT_S,
            )
        client = _redis
    client.ping()


def _check_kafka() -> None:
    global _kafka_admin
    with _clients_lock:
        if _kafka_admin is None:
            _kafka_admin = AdminClient(kafka_client_config(settings.KAFKA_BOOTSTRAP_SERVERS, log_level=0))
        admin = _kafka_admin
    metadata = admin.list_topics(timeout=CHECK_TIMEOUT_S)
    if not metadata.brokers:
        raise ConnectionError("no broker in the cluster metadata")


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "redis": _check_redis,
    "kafka": _check_kafka,
}


# What each kind of process needs to do its work (among what the service declares).
PROCESS_CHECKS: dict[str, tuple[str, ...]] = {
    "web": ("database", "redis"),
    "worker": ("database", "redis"),
    "beat": ("redis",),
    "relay": ("database", "kafka"),
    "consumer": ("database", "kafka"),
}


def checks_of(process: str) -> list[str]:
    """The readiness checks of a kind of process, in the order the service declares them."""
    if process not in PROCESS_CHECKS:
        raise ValueError(f"no such process kind {process!r}; known: {', '.join(PROCESS_CHECKS)}")
    return [name for name in settings.COMPTOIR["HEALTH_CHECKS"] if name in PROCESS_CHECKS[process]]


HEARTBEAT_EVERY_S = 5.0


def heartbeat_file(service: str, process: str) -> Path:
    """Where a process's loop leaves its heartbeat: $COMPTOIR_HEARTBEAT_DIR, else the temp folder."""
    folder = os.environ.get("COMPTOIR_HEARTBEAT_DIR") or tempfile.gettempdir()
    return Path(folder) / f"comptoir-{service}-{process}.heartbeat"


class Heartbeat:
    """Touched by a process's main loop on every turn (at most every HEARTBEAT_EVERY_S):
    its age is the liveness of a process that has no HTTP port."""

    def __init__(self, service: str, process: str) -> None:
        self.path = heartbeat_file(service, process)
        self._next = 0.0

    def beat(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + HEARTBEAT_EVERY_S
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def keep_going(self) -> bool:
        """`beat()` for loops that take an `until` callback: never asks them to stop."""
        self.beat()
        return False

    def age_s(self) -> float | None:
        """Seconds since the last beat; None when there was none."""
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None


def run_checks(names: list[str]) -> dict[str, str]:
    results = {}
    for name in names:
        try:
            CHECKS[name]()
        except Exception as error:  # noqa: BLE001 - any failure makes the check fail
            results[name] = f"failed: {type(error).__name__}: {error}"[:300]
        else:
            results[name] = "ok"
    return results


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "service": settings.COMPTOIR["SERVICE_NAME"]})


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    results = run_checks(checks_of("web"))
    failed = sorted(name for name, result in results.items() if result != "ok")
    body = {
        "status": "unavailable" if failed else "ok",
        "service": settings.COMPTOIR["SERVICE_NAME"],
        "checks": results,
        "failed": failed,
    }
    return JsonResponse(body, status=503 if failed else 200)


def health_urlpatterns() -> list[URLPattern]:
    from ._metrics import metrics_view

    return [
        path("health/live", live, name="health-live"),
        path("health/ready", ready, name="health-ready"),
        path("metrics", metrics_view, name="metrics"),
    ]
