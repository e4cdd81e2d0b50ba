"""`/health/live` (the process answers) and `/health/ready` (its dependencies do).

Readiness runs one check per dependency the service declares in
`COMPTOIR["HEALTH_CHECKS"]` (database, redis, kafka) and answers 503 naming the
checks that failed, so an orchestrator stops routing to an instance that
cannot do its work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

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
    results = run_checks(list(settings.COMPTOIR["HEALTH_CHECKS"]))
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
