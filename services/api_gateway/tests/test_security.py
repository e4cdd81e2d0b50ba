"""Authentication, header hygiene, body limits and what is never routed."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.assertions import assert_error
from tests.conftest import JWKS_COOLDOWN_S, MAX_BODY, Platform
from tests.tokens import TokenFactory

PROTECTED = "/api/orders/"


BAD_TOKENS: dict[str, Callable[[TokenFactory, int], str]] = {
    "expired_by_1s": lambda f, uid: f.user(uid, exp=int(time.time()) - 1),
    "alg_none": lambda f, uid: f.unsigned(uid),
    "hs256_with_rsa_public_key": lambda f, uid: f.hs256_with_public_key(uid),
    "wrong_aud": lambda f, uid: f.user(uid, aud="someone-else"),
    "wrong_iss": lambda f, uid: f.user(uid, iss="https://evil.example"),
    "unknown_kid": lambda f, uid: f.encode(f.claims(uid), kid="rotated-away"),
    "tampered_payload": lambda f, uid: f.tampered(uid),
    "service_token": lambda f, uid: f.user(
        uid, aud="comptoir-internal", token_use="service", sub="service:order_service"
    ),
    "refresh_token": lambda f, uid: f.user(uid, token_use="refresh"),
    "not_a_jwt": lambda f, uid: "not.a.jwt",
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_invalid_token_is_refused_and_never_reaches_the_service(
    kind: str,
    gateway: httpx.Client,
    platform: Platform,
    token_factory: TokenFactory,
    user_id: int,
    request_id: str,
) -> None:
    token = BAD_TOKENS[kind](token_factory, user_id)

    response = gateway.get(PROTECTED, headers={**token_factory.header(token), "X-Request-ID": request_id})

    assert_error(response, 401, "authentication_failed", request_id)
    assert response.headers["www-authenticate"] == 'Bearer realm="comptoir", error="invalid_token"'
    assert platform.accounts.seen(request_id) == []


def test_missing_token_is_refused_and_never_reaches_the_service(
    gateway: httpx.Client, platform: Platform, request_id: str
) -> None:
    response = gateway.get(PROTECTED, headers={"X-Request-ID": request_id})

    assert_error(response, 401, "not_authenticated", request_id)
    assert response.headers["www-authenticate"] == 'Bearer realm="comptoir"'
    assert platform.accounts.seen(request_id) == []


def test_valid_token_passes_and_is_forwarded_for_the_service_to_verify(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    token = token_factory.user(user_id)

    response = gateway.get(PROTECTED, headers={**token_factory.header(token), "X-Request-ID": request_id})

    assert response.status_code == 200
    assert response.json()["path"] == PROTECTED
    [seen] = platform.accounts.seen(request_id)
    assert seen["headers"]["authorization"] == f"Bearer {token}"


def test_rotated_signing_key_is_fetched_when_a_token_names_it(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int
) -> None:
    rotated = TokenFactory()
    token = rotated.user(user_id)
    original = platform.jwks_file.read_text()
    platform.jwks_file.write_text(json.dumps({"keys": token_factory.jwks["keys"] + rotated.jwks["keys"]}))
    try:
        time.sleep(JWKS_COOLDOWN_S + 0.1)  # refetches on unknown kids are spaced by the cooldown

        response = gateway.get(PROTECTED, headers=rotated.header(token))
    finally:
        platform.jwks_file.write_text(original)

    assert response.status_code == 200
    assert response.json()["headers"]["authorization"] == f"Bearer {token}"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/users/register/"),
        ("POST", "/api/users/auth/refresh/"),
        ("GET", "/api/users/auth/jwks/"),
        ("GET", "/api/products/"),
        ("GET", "/api/products/7/"),
        ("GET", "/api/products/categories/"),
        ("HEAD", "/api/products/7/"),
    ],
)
def test_public_routes_pass_without_a_token(
    method: str, path: str, gateway: httpx.Client, platform: Platform, request_id: str
) -> None:
    response = gateway.request(method, path, headers={"X-Request-ID": request_id}, json=None)

    assert response.status_code == 200
    stub = platform.catalog if path.startswith("/api/products/") else platform.accounts
    assert [r["path"] for r in stub.seen(request_id)] == [path]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/products/"),
        ("DELETE", "/api/products/7/"),
        ("GET", "/api/users/me/"),
        ("POST", "/api/users/auth/logout/"),
        ("GET", "/api/payments/wallet/"),
    ],
)
def test_everything_else_needs_a_token(
    method: str, path: str, gateway: httpx.Client, platform: Platform, request_id: str
) -> None:
    response = gateway.request(method, path, headers={"X-Request-ID": request_id})

    assert_error(response, 401, "not_authenticated", request_id)
    for stub in (platform.accounts, platform.catalog, platform.payments):
        assert stub.seen(request_id) == []


def test_client_identity_and_forwarding_headers_never_reach_the_service(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    spoofed = {
        "X-User-Id": "1",
        "X-User-Is-Staff": "true",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "for=6.6.6.6;proto=https",
        "X-Real-IP": "6.6.6.6",
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "must-not-pass",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "traceparent": traceparent,
        "tracestate": "vendor=1",
        "X-Request-ID": request_id,
    }

    response = gateway.get(
        PROTECTED, headers={**spoofed, **token_factory.header(token_factory.user(user_id))}
    )

    assert response.status_code == 200
    [seen] = platform.accounts.seen(request_id)
    headers = seen["headers"]
    for name in (
        "x-user-id",
        "x-user-is-staff",
        "forwarded",
        "x-real-ip",
        "x-secret-hop",
        "proxy-authorization",
    ):
        assert name not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    gateway_host = platform.gateway_url.removeprefix("http://")
    assert headers["x-forwarded-host"] == gateway_host
    assert headers["host"] == gateway_host
    assert headers["traceparent"] == traceparent
    assert headers["tracestate"] == "vendor=1"
    assert response.headers["x-request-id"] == request_id


def test_request_id_is_generated_when_missing_or_unsafe(gateway: httpx.Client, platform: Platform) -> None:
    response = gateway.get("/api/products/", headers={"X-Request-ID": "bad id\twith spaces"})

    assert response.status_code == 200
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    [seen] = platform.catalog.seen(generated)
    traceparent = seen["headers"]["traceparent"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", traceparent)


def test_oversized_body_is_refused_before_the_service(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    response = gateway.post(
        PROTECTED,
        content=b"x" * (MAX_BODY + 1),
        headers={**token_factory.header(token_factory.user(user_id)), "X-Request-ID": request_id},
    )

    assert_error(response, 413, "payload_too_large", request_id)
    assert response.json()["error"]["details"] == {"max_bytes": MAX_BODY}
    assert platform.accounts.seen(request_id) == []


def test_an_overlong_uri_is_refused_in_the_standard_body_before_the_service(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    headers = {**token_factory.header(token_factory.user(user_id)), "X-Request-ID": request_id}
    response = gateway.get(PROTECTED, params={"q": "x" * 4000}, headers=headers)

    assert_error(response, 414, "uri_too_long", request_id)
    assert response.json()["error"]["details"] == {"max_bytes": 4000}
    assert platform.accounts.seen(request_id) == []

    within = gateway.get(PROTECTED, params={"q": "x" * 3000}, headers=headers)
    assert within.status_code == 200


def test_oversized_chunked_body_is_refused_before_the_service(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * 10_000

    response = gateway.post(
        PROTECTED,
        content=chunks(),
        headers={**token_factory.header(token_factory.user(user_id)), "X-Request-ID": request_id},
    )

    assert_error(response, 413, "payload_too_large", request_id)
    assert platform.accounts.seen(request_id) == []


@pytest.mark.parametrize("size", [2_000, 80_000, MAX_BODY])
def test_bodies_within_the_limit_reach_the_service_whole_with_their_length(
    size: int,
    gateway: httpx.Client,
    platform: Platform,
    token_factory: TokenFactory,
    user_id: int,
    request_id: str,
) -> None:
    response = gateway.post(
        PROTECTED,
        content=b"z" * size,
        headers={
            **token_factory.header(token_factory.user(user_id)),
            "X-Request-ID": request_id,
            "Content-Type": "application/json",
        },
    )

    assert response.status_code == 200
    [seen] = platform.accounts.seen(request_id)
    assert seen["body_bytes"] == size
    assert seen["headers"]["content-length"] == str(size)
    assert "transfer-encoding" not in seen["headers"]
    assert seen["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize(
    "path",
    [
        "/internal/users/1/",
        "/internal/products/quote/",
        "/api/users/../../internal/users/1/",
        "/api/users/%2e%2e/%2e%2e/internal/users/1/",
        "/api/unknown/",
        "/",
    ],
)
def test_internal_and_unknown_paths_are_never_routed(
    path: str, platform: Platform, token_factory: TokenFactory, user_id: int, request_id: str
) -> None:
    # http.client sends the path exactly as written (no dot-segment clean-up).
    target = urlsplit(platform.gateway_url)
    connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
    try:
        connection.request(
            "GET",
            path,
            headers={**token_factory.header(token_factory.user(user_id)), "X-Request-ID": request_id},
        )
        raw = connection.getresponse()
        response = httpx.Response(raw.status, headers=raw.getheaders(), content=raw.read())
    finally:
        connection.close()

    assert_error(response, 404, "not_found", request_id)
    for stub in (platform.accounts, platform.catalog, platform.payments):
        assert stub.seen(request_id) == []


def test_security_headers_on_every_answer(gateway: httpx.Client) -> None:
    for response in (gateway.get("/api/products/"), gateway.get("/nowhere"), gateway.get("/health/live")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert "server" not in response.headers
        assert "x-powered-by" not in response.headers


def test_cors_preflight_from_a_configured_origin(gateway: httpx.Client) -> None:
    allowed = gateway.options(
        "/api/orders/",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    refused = gateway.options(
        "/api/orders/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert_error(refused, 400, "cors_refused")
    assert refused.json()["error"]["message"] == "Disallowed CORS origin."
    assert "access-control-allow-origin" not in refused.headers


def test_upstream_cookies_are_never_replayed_to_other_clients(
    gateway: httpx.Client, platform: Platform, request_id: str
) -> None:
    first = gateway.get("/api/products/", params={"cookie": "1"})
    assert first.headers["set-cookie"] == "session=from-upstream; Path=/"

    with httpx.Client(base_url=platform.gateway_url, timeout=10) as other_client:
        other_client.get("/api/products/", headers={"X-Request-ID": request_id})

    [seen] = platform.catalog.seen(request_id)
    assert "cookie" not in seen["headers"]
