"""Token verification: only RS256 tokens from the platform's keys, unexpired,
for the right issuer and audience, open the doors they are meant for."""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client

from comptoir.testing import TokenFactory


def _get(client: Client, url: str, token: str) -> tuple[int, dict[str, object]]:
    response = client.get(url, headers=TokenFactory.header(token))
    return response.status_code, response.json()


def test_valid_user_token_identifies_the_user(client: Client, tokens: TokenFactory) -> None:
    status, body = _get(client, "/me/", tokens.user(7))
    assert (status, body) == (200, {"user_id": 7, "is_staff": False, "service": None})


def test_no_token_is_401_with_a_bearer_challenge(client: Client, tokens: TokenFactory) -> None:
    response = client.get("/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="comptoir"'


def _forged(tokens: TokenFactory) -> dict[str, str]:
    now = int(time.time())
    base = {"iss": "comptoir-user-service", "aud": "comptoir", "sub": "7", "token_use": "access"}
    public_pem = tokens.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    valid = tokens.user(7)
    header, payload, signature = valid.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["is_staff"] = True
    tampered_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"%s"}' % tokens.kid.encode()).rstrip(b"=")
    return {
        "expired by 1 s": tokens.user(7, lifetime_s=-1),
        "alg none": f"{none_header.decode()}.{payload}.",
        "HS256 with the public key": jwt.encode(
            {**base, "iat": now, "exp": now + 60},
            base64.b64encode(public_pem).decode(),
            algorithm="HS256",
            headers={"kid": tokens.kid},
        ),
        "wrong audience": tokens.user(7, aud="someone-else"),
        "wrong issuer": tokens.user(7, iss="evil-issuer"),
        "unknown kid": tokens.encode({**base, "iat": now, "exp": now + 60}, kid="not-a-key"),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "service token used as access": tokens.user(7, token_use="service"),
        "not a jwt": "abc.def",
    }


@pytest.mark.parametrize(
    "case",
    [
        "expired by 1 s",
        "alg none",
        "HS256 with the public key",
        "wrong audience",
        "wrong issuer",
        "unknown kid",
        "tampered payload",
        "service token used as access",
        "not a jwt",
    ],
)
def test_invalid_tokens_are_401(client: Client, tokens: TokenFactory, case: str) -> None:
    status, body = _get(client, "/me/", _forged(tokens)[case])
    assert status == 401, case
    assert body["error"]["code"] == "authentication_failed"  # type: ignore[index]


def test_staff_route_refuses_a_plain_user_and_admits_staff(client: Client, tokens: TokenFactory) -> None:
    status, body = _get(client, "/staff/", tokens.user(7))
    assert status == 403
    assert body["error"]["code"] == "permission_denied"  # type: ignore[index]
    status, body = _get(client, "/staff/", tokens.user(8, is_staff=True))
    assert (status, body) == (200, {"user_id": 8, "is_staff": True, "service": None})


def test_internal_route_admits_only_service_tokens(client: Client, tokens: TokenFactory) -> None:
    status, _ = _get(client, "/internal/ping/", tokens.user(8, is_staff=True))
    assert status == 403
    status, body = _get(client, "/internal/ping/", tokens.service("order_service"))
    assert (status, body) == (200, {"user_id": None, "is_staff": False, "service": "order_service"})
    # A service token does not pass as an end user either.
    status, _ = _get(client, "/me/", tokens.service("order_service"))
    assert status == 403


def test_rotated_key_is_picked_up_through_the_jwks(client: Client, tokens: TokenFactory) -> None:
    newer = TokenFactory()
    # user_service publishes both keys during a rotation.
    tokens.jwks["keys"].extend(newer.jwks["keys"])
    status, _ = _get(client, "/me/", newer.user(9))
    assert status == 200
    status, _ = _get(client, "/me/", tokens.user(9))
    assert status == 200


def test_a_verified_token_is_checked_once_until_it_expires(
    client: Client, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comptoir import _auth

    checks: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: object, **kwargs: object) -> object:
        checks.append(token)
        return real_decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting_decode)
    token = tokens.user(7)

    statuses = [_get(client, "/me/", token)[0] for _ in range(3)]
    assert (statuses, checks) == ([200, 200, 200], [token])

    # Once its expiry has passed, the remembered token is verified again, and refused.
    claims, kid, _ = _auth._verified[token]
    _auth._verified[token] = (claims, kid, time.time() - 1)
    assert _get(client, "/me/", tokens.user(7, lifetime_s=-1))[0] == 401
    assert _get(client, "/me/", token)[0] == 200
    assert checks[-1] == token


def test_a_remembered_token_is_refused_once_its_key_leaves_the_key_set(
    client: Client, tokens: TokenFactory
) -> None:
    token = tokens.user(7)
    assert _get(client, "/me/", token)[0] == 200

    published = list(tokens.jwks["keys"])
    newer = TokenFactory()
    tokens.jwks["keys"][:] = newer.jwks["keys"]  # the old key is retired
    try:
        status, body = _get(client, "/me/", token)
    finally:
        tokens.jwks["keys"][:] = published

    error = body["error"]
    assert isinstance(error, dict)
    assert (status, error["code"]) == (401, "authentication_failed")


class _JWKSServer:
    """user_service's JWKS endpoint as a real HTTP server on a port of its own,
    which can be down (nothing listening) and come up later on the same port."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def up(self) -> None:
        jwks = self.jwks

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def jwks_server(tokens: TokenFactory, settings: Any) -> Iterator[_JWKSServer]:
    """The services' JWKS client pointed at a real HTTP endpoint that starts down."""
    server = _JWKSServer(tokens.jwks)
    settings.COMPTOIR_JWKS_PROVIDER = None
    settings.JWKS_URL = server.url
    yield server
    server.down()


@pytest.mark.parametrize("token_kind", ["user", "service"])
def test_signing_keys_unreachable_is_503_then_recovers(
    client: Client, tokens: TokenFactory, jwks_server: _JWKSServer, token_kind: str
) -> None:
    """user_service down when a service starts: its tokens are not invalid, the check is
    unavailable: 503 with Retry-After and the standard body, then 200 once it is back."""
    token = tokens.user(7) if token_kind == "user" else tokens.service("order_service")
    url = "/me/" if token_kind == "user" else "/internal/ping/"

    response = client.get(url, headers=TokenFactory.header(token))
    body = response.json()
    assert response.status_code == 503, body
    assert body["error"]["code"] == "unavailable"
    assert "signing keys" in body["error"]["message"]
    assert int(response["Retry-After"]) >= 1

    jwks_server.up()
    assert client.get(url, headers=TokenFactory.header(token)).status_code == 200


def test_remembered_token_with_signing_keys_unreachable_is_503_not_401(
    client: Client, tokens: TokenFactory, jwks_server: _JWKSServer
) -> None:
    """Keys fetched once, then user_service goes away and the cached key set expires:
    a request is answered 503 (retry), never 401 (log in again)."""
    from comptoir import _auth

    jwks_server.up()
    token = tokens.user(7)
    assert client.get("/me/", headers=TokenFactory.header(token)).status_code == 200

    jwks_server.down()
    client_ = _auth._jwk_client()
    assert client_.jwk_set_cache is not None
    client_.jwk_set_cache.jwk_set_with_timestamp = None  # the cached key set's lifespan is over
    response = client.get("/me/", headers=TokenFactory.header(token))
    assert (response.status_code, response.json()["error"]["code"]) == (503, "unavailable")

    jwks_server.up()
    assert client.get("/me/", headers=TokenFactory.header(token)).status_code == 200
