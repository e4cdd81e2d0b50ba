"""The staff-only operations routes: the services' `/api/ops/<service>/` forwarded to
staff only; the gateway's own health, traces (from a real `devstack.otlp_sink`)
and metrics (from the devstack's real Prometheus, named queries only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Platform, free_port, start_gateway, stop
from tests.tokens import TokenFactory

REPO_ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_URL = f"http://127.0.0.1:{os.environ.get('COMPTOIR_PROMETHEUS_PORT', '9090')}"
SERVICES = ["user_service", "product_service", "order_service", "payment_service", "email_service"]
GATEWAY_ROUTES = [
    "/api/ops/health/",
    "/api/ops/traces/?service=order_service",
    "/api/ops/traces/0af7651916cd43dd8448eb211c80319c",
    "/api/ops/metrics/?query=orders_by_outcome",
]


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The devstack's trace backend, as a real process: (OTLP URL, query URL)."""
    folder = tmp_path_factory.mktemp("sink")
    otlp_port, query_port = free_port(), free_port()
    log = folder / "sink.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.otlp_sink",
                "--otlp-port",
                str(otlp_port),
                "--query-port",
                str(query_port),
                "--store",
                str(folder / "spans.sqlite"),
            ],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    query_url = f"http://127.0.0.1:{query_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(query_url + "/api/services", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"the trace sink did not start:\n{(folder / 'sink.log').read_text()[-3000:]}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{otlp_port}", query_url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def ops_gateway(
    platform: Platform, sink: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A gateway of its own (high rate limits) on the stubs, the sink and Prometheus."""
    env = {
        "USER_SERVICE_URL": platform.accounts.url,
        "ORDER_SERVICE_URL": platform.accounts.url,
        "EMAIL_SERVICE_URL": platform.accounts.url,
        "PRODUCT_SERVICE_URL": platform.catalog.url,
        "PAYMENT_SERVICE_URL": platform.payments.url,
        "GATEWAY_RATE_LIMIT_PREFIX": f"{platform.redis_prefix}-ops",
        "GATEWAY_RATE_LIMIT_AUTHENTICATED": "100000/minute",
        "GATEWAY_TRACES_URL": sink[1],
        "GATEWAY_PROMETHEUS_URL": PROMETHEUS_URL,
    }
    process, url = start_gateway(env, tmp_path_factory.mktemp("ops") / "gateway.log")
    try:
        with httpx.Client(base_url=url, timeout=20) as client:
            yield client
    finally:
        stop(process)


def _staff(tokens: TokenFactory) -> dict[str, str]:
    return tokens.header(tokens.user(1, is_staff=True))


@pytest.mark.parametrize("service", SERVICES)
def test_service_ops_routes_reach_the_service_for_staff_only(
    ops_gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, service: str
) -> None:
    upstream = {"product_service": platform.catalog, "payment_service": platform.payments}.get(
        service, platform.accounts
    )
    path = f"/api/ops/{service}/dlq/"
    for headers, status, code in [
        ({}, 401, "not_authenticated"),
        (token_factory.header(token_factory.user(5)), 403, "permission_denied"),
        (token_factory.header(token_factory.user(5, is_staff="yes")), 403, "permission_denied"),
    ]:
        request_id = f"test-{uuid.uuid4().hex}"
        response = ops_gateway.get(path, headers={**headers, "X-Request-ID": request_id})
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
        assert upstream.seen(request_id) == []  # refused before the service
    request_id = f"test-{uuid.uuid4().hex}"
    response = ops_gateway.post(
        path + "purge/", json={"confirm": True}, headers={**_staff(token_factory), "X-Request-ID": request_id}
    )
    assert response.status_code == 200
    assert (response.json()["stub"], response.json()["path"]) == (upstream.name, path + "purge/")
    assert len(upstream.seen(request_id)) == 1


@pytest.mark.parametrize("path", GATEWAY_ROUTES)
def test_gateway_ops_routes_want_a_staff_token(
    ops_gateway: httpx.Client, token_factory: TokenFactory, path: str
) -> None:
    response = ops_gateway.get(path)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "not_authenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="comptoir"'
    response = ops_gateway.get(path, headers={"Authorization": "Bearer nonsense"})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "authentication_failed")
    response = ops_gateway.get(path, headers=token_factory.header(token_factory.user(6)))
    assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
    response = ops_gateway.post(path, headers=_staff(token_factory))
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")


def test_health_reports_every_upstream_and_asks_each_for_its_processes(
    ops_gateway: httpx.Client, platform: Platform, token_factory: TokenFactory
) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    headers = {**_staff(token_factory), "X-Request-ID": request_id}
    response = ops_gateway.get("/api/ops/health/", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert body["gateway"]["checks"]["redis"] == "ok"
    assert [service["service"] for service in body["services"]] == sorted(SERVICES)
    assert all(service["ready"] for service in body["services"])
    # The stubs echo the request instead of a process list: nothing to report, nothing failed.
    assert all(service["processes"] == [] for service in body["services"])
    assert body["status"] == "ok"
    asked = [r for r in platform.accounts.seen(request_id) if r["path"].endswith("/processes/")]
    assert sorted(r["path"] for r in asked) == [
        "/api/ops/email_service/processes/",
        "/api/ops/order_service/processes/",
        "/api/ops/user_service/processes/",
    ]
    assert all(r["headers"]["authorization"] == headers["Authorization"] for r in asked)


def _export_trace(otlp_url: str, trace_id: str) -> None:
    now = time.time_ns()
    spans = []
    for index, service in enumerate(["api_gateway", "order_service"]):
        spans.append(
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "test"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": f"{index + 1:016x}",
                                **({"parentSpanId": f"{index:016x}"} if index else {}),
                                "name": f"GET /api/orders/ ({service})",
                                "kind": 2,
                                "startTimeUnixNano": str(now + index * 1000),
                                "endTimeUnixNano": str(now + 5_000_000),
                                "status": {},
                            }
                        ],
                    }
                ],
            }
        )
    response = httpx.post(otlp_url + "/v1/traces", json={"resourceSpans": spans}, timeout=10)
    assert response.status_code == 200, response.text


def test_a_trace_is_read_from_the_trace_backend(
    ops_gateway: httpx.Client, sink: tuple[str, str], token_factory: TokenFactory
) -> None:
    trace_id = uuid.uuid4().hex
    _export_trace(sink[0], trace_id)
    response = ops_gateway.get(f"/api/ops/traces/{trace_id.upper()}", headers=_staff(token_factory))
    assert response.status_code == 200, response.text
    (trace,) = response.json()["data"]
    assert trace["traceID"] == trace_id
    services = {process["serviceName"] for process in trace["processes"].values()}
    assert services == {"api_gateway", "order_service"}
    assert len(trace["spans"]) == 2

    found = ops_gateway.get(
        "/api/ops/traces/", params={"service": "order_service", "limit": 5}, headers=_staff(token_factory)
    )
    assert found.status_code == 200
    assert trace_id in [t["traceID"] for t in found.json()["data"]]

    missing = ops_gateway.get(f"/api/ops/traces/{uuid.uuid4().hex}", headers=_staff(token_factory))
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    for bad in ["not-hex", "0" * 33]:
        response = ops_gateway.get(f"/api/ops/traces/{bad}", headers=_staff(token_factory))
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    for params in [{}, {"service": "order_service", "limit": "0"}, {"service": "x", "tags": "[1]"}]:
        response = ops_gateway.get("/api/ops/traces/", params=params, headers=_staff(token_factory))
        assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")


def test_metrics_run_named_queries_only(ops_gateway: httpx.Client, token_factory: TokenFactory) -> None:
    response = ops_gateway.get(
        "/api/ops/metrics/",
        params={"query": "outbox_backlog", "range_s": 600, "step_s": 30},
        headers=_staff(token_factory),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["query"], body["range_s"], body["step_s"]) == ("outbox_backlog", 600, 30)
    assert body["promql"] == "sum by (service) (comptoir_outbox_pending_messages)"
    assert body["result_type"] == "matrix"
    assert isinstance(body["result"], list)

    for params in [
        {"query": "up"},
        {"query": "sum(rate(gateway_requests_total[1m])) or vector(1)"},
        {"query": "orders_by_outcome", "range_s": "10"},
        {"query": "orders_by_outcome", "step_s": "abc"},
        {"query": "orders_by_outcome", "range_s": str(7 * 24 * 3600), "step_s": "1"},
    ]:
        response = ops_gateway.get("/api/ops/metrics/", params=params, headers=_staff(token_factory))
        assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request"), params
    response = ops_gateway.get("/api/ops/metrics/", params={"query": "up"}, headers=_staff(token_factory))
    assert "orders_by_outcome" in response.json()["error"]["details"]["known"]


def test_a_backend_down_is_a_503(platform: Platform, token_factory: TokenFactory, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {
        "USER_SERVICE_URL": platform.accounts.url,
        **{f"{name.upper()}_URL": nowhere for name in SERVICES if name != "user_service"},
        "GATEWAY_RATE_LIMIT_PREFIX": f"{platform.redis_prefix}-ops-down",
        "GATEWAY_TRACES_URL": nowhere,
        "GATEWAY_PROMETHEUS_URL": nowhere,
    }
    process, url = start_gateway(env, tmp_path / "gateway.log")
    try:
        with httpx.Client(base_url=url, timeout=20) as client:
            for path in ["/api/ops/traces/abc", "/api/ops/metrics/?query=consumer_lag"]:
                response = client.get(path, headers=_staff(token_factory))
                assert (response.status_code, response.json()["error"]["code"]) == (503, "unavailable")
                assert re.match(
                    r"^(The trace backend|Prometheus) did not answer", response.json()["error"]["message"]
                )
            health = client.get("/api/ops/health/", headers=_staff(token_factory)).json()
            down = {s["service"]: s for s in health["services"] if not s["ready"]}
            assert health["status"] == "degraded"
            assert sorted(down) == ["email_service", "order_service", "payment_service", "product_service"]
            assert down["order_service"]["error"].startswith("unreachable")
    finally:
        stop(process)
