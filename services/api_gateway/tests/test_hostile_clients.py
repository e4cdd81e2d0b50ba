"""Clients that try to starve the platform: trickled bodies, spoofed addresses,
login floods, health and metrics probes."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

from tests.conftest import BODY_TIMEOUT_S, Platform
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
