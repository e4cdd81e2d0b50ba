"""Clients that try to starve the platform: trickled bodies, spoofed addresses,
login floods, health and metrics probes."""

from __future__ import annotations

import http.server
import json
import pathlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.assertions import assert_error
from tests.conftest import BODY_TIMEOUT_S, LOGIN_LIMIT, Platform, forget_rate_limits, start_gateway, stop
from tests.tokens import TokenFactory


def _raw_request(platform: Platform, head: str, body_part: bytes) -> socket.socket:
    address = urlsplit(platform.gateway_url)
    sock = socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=10)
    sock.sendall(head.encode("latin-1") + body_part)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


def _head(path: str, length: int, token: str, request_id: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: shop.example\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\nX-Request-ID: {request_id}\r\n\r\n"
    )


def test_a_trickled_body_reaches_the_service_only_once_whole(
    platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    body = json.dumps({"note": "x" * 80_000}).encode()
    half = len(body) // 2
    sock = _raw_request(
        platform, _head("/api/orders/", len(body), token_factory.user(user_id), request_id), body[:half]
    )
    try:
        time.sleep(BODY_TIMEOUT_S / 2)
        # Half the body is at the gateway: the service has not been asked anything yet.
        assert platform.accounts.seen(request_id) == []
        sock.sendall(body[half:])
        status, answer = _read_response(sock)
    finally:
        sock.close()
    assert status == 200, answer
    seen = platform.accounts.seen(request_id)
    assert len(seen) == 1
    assert seen[0]["headers"]["content-length"] == str(len(body))


def test_a_body_that_stops_arriving_is_answered_408_without_reaching_the_service(
    platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    sock = _raw_request(platform, _head("/api/orders/", 1000, token_factory.user(user_id), request_id), b"{")
    try:
        sock.settimeout(BODY_TIMEOUT_S + 5)
        status, answer = _read_response(sock)
        assert status == 408, answer
        error = json.loads(answer)["error"]
        assert error["code"] == "request_timeout"
        assert error["trace_id"] == request_id
        assert sock.recv(1) == b"", "the gateway closes a connection whose body it gave up on"
    finally:
        sock.close()
    assert platform.accounts.seen(request_id) == []


# --- who the client is, behind trusted proxies ----------------------------------------

ACCOUNT_FAILURES = 3


@pytest.fixture(scope="module")
def behind_proxy(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A gateway that trusts the loopback address as its ingress proxy."""
    env = {
        "USER_SERVICE_URL": platform.accounts.url,
        "ORDER_SERVICE_URL": platform.accounts.url,
        "EMAIL_SERVICE_URL": platform.accounts.url,
        "PRODUCT_SERVICE_URL": platform.catalog.url,
        "PAYMENT_SERVICE_URL": platform.payments.url,
        "GATEWAY_RATE_LIMIT_PREFIX": platform.redis_prefix + "-proxied",
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
        "GATEWAY_RATE_LIMIT_LOGIN_FAILURES": f"{ACCOUNT_FAILURES}/minute",
    }
    process, url = start_gateway(env, tmp_path_factory.mktemp("proxied") / "gateway.log")
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield client
    finally:
        stop(process)
        forget_rate_limits(platform.redis_prefix + "-proxied")


def _forwarded_for(platform: Platform, client: httpx.Client, chain: str | None) -> str:
    request_id = f"xff-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id}
    if chain is not None:
        headers["X-Forwarded-For"] = chain
    assert client.get("/api/products/", headers=headers).status_code == 200
    [seen] = platform.catalog.seen(request_id)
    return str(seen["headers"]["x-forwarded-for"])


def test_the_client_is_the_right_most_address_a_trusted_proxy_did_not_add(
    platform: Platform, behind_proxy: httpx.Client, gateway: httpx.Client
) -> None:
    assert _forwarded_for(platform, behind_proxy, "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    assert _forwarded_for(platform, behind_proxy, "6.6.6.6, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    assert _forwarded_for(platform, behind_proxy, None) == "127.0.0.1"
    # A gateway that trusts no proxy never lets the client name itself.
    assert _forwarded_for(platform, gateway, "203.0.113.7") == "127.0.0.1"


def _login(client: httpx.Client, address: str, email: str, status: int) -> httpx.Response:
    return client.post(
        "/api/users/auth/login/",
        params={"status": str(status)},
        json={"email": email, "password": "guess"},
        headers={"X-Forwarded-For": address},
    )


def test_the_login_limit_is_per_client_behind_the_proxy(behind_proxy: httpx.Client) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    answers = [_login(behind_proxy, "198.51.100.1", email, 200).status_code for _ in range(LOGIN_LIMIT + 1)]

    assert answers == [200] * LOGIN_LIMIT + [429]
    # Another client behind the same proxy still logs in: it is not one shared bucket.
    assert _login(behind_proxy, "198.51.100.2", email, 200).status_code == 200


def test_failed_logins_are_limited_per_account_from_any_address(
    platform: Platform, behind_proxy: httpx.Client
) -> None:
    email = f"victim-{uuid.uuid4().hex}@example.com"
    answers = [
        _login(behind_proxy, f"192.0.2.{n}", email if n % 2 else email.upper(), 401).status_code
        for n in range(1, ACCOUNT_FAILURES + 1)
    ]
    assert answers == [401] * ACCOUNT_FAILURES

    refused = behind_proxy.post(
        "/api/users/auth/login/",
        json={"email": f"  {email} ", "password": "guess"},
        headers={"X-Forwarded-For": "192.0.2.200", "X-Request-ID": "locked-account"},
    )
    assert_error(refused, 429, "throttled", "locked-account")
    assert "for this account" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert platform.accounts.seen("locked-account") == []
    # Successful logins never count, and other accounts are untouched.
    other = f"{uuid.uuid4().hex}@example.com"
    assert [_login(behind_proxy, f"192.0.2.{50 + n}", other, 200).status_code for n in range(5)] == [200] * 5


# --- health and metrics -----------------------------------------------------------------


class _CountingUpstream(http.server.BaseHTTPRequestHandler):
    ready_checks = 0

    def do_GET(self) -> None:
        if self.path == "/health/ready":
            type(self).ready_checks += 1
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_readiness_is_checked_once_per_period_however_often_it_is_asked(
    tmp_path: pathlib.Path,
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    upstream = f"http://127.0.0.1:{server.server_address[1]}"
    names = ("USER", "ORDER", "EMAIL", "PRODUCT", "PAYMENT")
    env = {f"{name}_SERVICE_URL": upstream for name in names}
    env["GATEWAY_HEALTH_CACHE_S"] = "60"
    process, url = start_gateway(env, tmp_path / "gateway.log")
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            answers = [client.get("/health/ready") for _ in range(20)]
    finally:
        stop(process)
        server.shutdown()
        server.server_close()
    assert [a.status_code for a in answers] == [200] * 20
    assert answers[0].json()["status"] == "ok"
    assert _CountingUpstream.ready_checks == len(names)  # one report for all twenty calls
