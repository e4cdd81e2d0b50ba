"""Helpers shared by the tests (importable by dotted path, unlike conftest)."""

from __future__ import annotations

from typing import Any

import jwt

from comptoir.testing import test_jwks
from users import keys


def service_and_test_jwks() -> dict[str, Any]:
    """This service's own keys plus the `tokens` fixture's test key: both kinds of token verify."""
    return {"keys": [*keys.jwks()["keys"], *test_jwks()["keys"]]}


def decode_with_jwks(token: str, jwks: dict[str, Any], *, audience: str) -> dict[str, Any]:
    """Verifies a token the way another service would: public key from the JWKS by `kid`."""
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == kid]
    public_key = jwt.PyJWK.from_dict(jwk).key
    claims: dict[str, Any] = jwt.decode(
        token,
        public_key,
        algorithms=["RS256"],
        audience=audience,
        issuer="comptoir-user-service",
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    return claims
