"""Pytest fixtures for services' tests: tokens signed by a test key.

Enable in a service's `tests/conftest.py` with `pytest_plugins = ["comptoir.testing"]`.
The `tokens` fixture makes the service trust a freshly generated RSA key (its
JWKS is served through the local provider hook), so tests exercise the real
verification path: signature, `kid`, `exp`, `iss`, `aud`, token use.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings

from ._auth import ACCESS, SERVICE
from ._scopes import client_scopes

_active_jwks: dict[str, Any] = {"keys": []}


def test_jwks() -> dict[str, Any]:
    """The JWKS provider that `tokens` points services at."""
    return _active_jwks


test_jwks.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


class TokenFactory:
    """Mints tokens the way user_service does, with a key only the tests know."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwks = {"keys": [{**public_jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def encode(self, claims: dict[str, Any], *, kid: str | None = None, algorithm: str = "RS256") -> str:
        return jwt.encode(claims, self.private_key, algorithm=algorithm, headers={"kid": kid or self.kid})

    def user(
        self,
        user_id: int,
        *,
        email: str | None = None,
        is_staff: bool = False,
        lifetime_s: int = 300,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": django_settings.JWT_ISSUER,
            "aud": django_settings.JWT_AUDIENCE,
            "sub": str(user_id),
            "email": email or f"user{user_id}@example.com",
            "is_staff": is_staff,
            "token_use": ACCESS,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return self.encode(claims)

    def service(
        self, name: str, *, scopes: list[str] | None = None, lifetime_s: int = 300, **overrides: Any
    ) -> str:
        """A service token of client `name`, with its configured scopes unless `scopes` says otherwise."""
        now = int(time.time())
        claims = {
            "iss": django_settings.JWT_ISSUER,
            "aud": django_settings.JWT_SERVICE_AUDIENCE,
            "sub": f"service:{name}",
            "token_use": SERVICE,
            "scope": " ".join(client_scopes(name) if scopes is None else scopes),
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return self.encode(claims)

    @staticmethod
    def header(token: str) -> dict[str, str]:
        """Headers for Django's test client: `client.get(url, headers=tokens.header(t))`."""
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(settings: Any) -> Iterator[TokenFactory]:
    factory = TokenFactory()
    _active_jwks["keys"] = factory.jwks["keys"]
    settings.COMPTOIR_JWKS_PROVIDER = "comptoir.testing.test_jwks"
    yield factory
    _active_jwks["keys"] = []
