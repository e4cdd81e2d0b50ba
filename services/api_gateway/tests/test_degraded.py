"""A second gateway process whose dependencies misbehave: an upstream that drops
every connection, an unreachable JWKS and an unreachable Redis."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.assertions import assert_error
from tests.conftest import Platform, free_port, metrics_of, start_gateway, stop
from tests.tokens import TokenFactory


@dataclass
class DroppingServer:
    """Accepts each connection, reads the request, closes without answering; counts."""

    port: int = field(default_factory=free_port)
    connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                with contextlib.suppress(OSError):
                    connection.recv(65536)
                self.connections += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def dropping_server() -> Iterator[DroppingServer]:
    server = DroppingServer()
    listener = socket.create_server(("127.0.0.1", server.port))
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture(scope="module")
def degraded_gateway(
    platform: Platform, dropping_server: DroppingServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("degraded") / "gateway.log"
    closed_port = free_port()
    process, url = start_gateway(
        {
            "PRODUCT_SERVICE_URL": dropping_server.url,
            "USER_SERVICE_URL": dropping_server.url,
            "ORDER_SERVICE_URL": platform.accounts.url,
            "PAYMENT_SERVICE_URL": platform.payments.url,
            "EMAIL_SERVICE_URL": platform.accounts.url,
            "GATEWAY_JWKS_URL": f"http://127.0.0.1:{closed_port}/api/users/auth/jwks/",
            "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{closed_port}/0",
        },
        log,
    )
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield client
    finally:
        stop(process)


def test_get_is_retried_once_on_a_dropped_connection(
    degraded_gateway: httpx.Client, dropping_server: DroppingServer
) -> None:
    before = dropping_server.connections

    response = degraded_gateway.get("/api/products/", headers={"X-Request-ID": "retried"})

    assert_error(response, 502, "bad_gateway", "retried")
    assert response.json()["error"]["details"] == {"upstream": "product_service"}
    assert dropping_server.connections - before == 2


def test_post_is_never_retried(degraded_gateway: httpx.Client, dropping_server: DroppingServer) -> None:
    before = dropping_server.connections

    response = degraded_gateway.post("/api/users/register/", json={"email": "x@example.com"})

    assert_error(response, 502, "bad_gateway")
    assert dropping_server.connections - before == 1


def test_unreachable_jwks_is_503_not_401(
    degraded_gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int
) -> None:
    response = degraded_gateway.get(
        "/api/orders/",
        headers={**token_factory.header(token_factory.user(user_id)), "X-Request-ID": "no-jwks"},
    )

    assert_error(response, 503, "unavailable", "no-jwks")
    assert platform.accounts.seen("no-jwks") == []


def test_unreachable_redis_and_upstreams_let_traffic_through_and_the_gateway_stays_ready(
    degraded_gateway: httpx.Client,
) -> None:
    passed = degraded_gateway.get("/api/payments/wallet/")  # no token: 401, after the (skipped) limit
    ready = degraded_gateway.get("/health/ready")

    assert_error(passed, 401, "not_authenticated")
    assert ready.status_code == 200  # reported, not taken out of rotation
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] == "failed: unreachable"
    assert body["checks"]["order_service"] == "ok"
    assert body["failed"] == ["product_service", "redis", "user_service"]
    skipped = re.search(
        r"^gateway_rate_limit_errors_total (\S+)$",
        metrics_of(str(degraded_gateway.base_url).rstrip("/")),
        re.M,
    )
    assert skipped is not None
    assert float(skipped.group(1)) >= 1
