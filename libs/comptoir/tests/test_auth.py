"""Token verification: only RS256 tokens from the platform's keys, unexpired,
for the right issuer and audience, open the doors they are meant for."""

from __future__ import annotations

import base64
import json
import time

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
