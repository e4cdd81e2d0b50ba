"""Tokens shaped like user_service's, signed with a key only the tests know."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "comptoir-user-service"
AUDIENCE = "comptoir"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenFactory:
    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwks = {"keys": [{**public_jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def claims(self, user_id: int, *, lifetime_s: int = 300, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "email": f"user{user_id}@example.com",
            "is_staff": False,
            "token_use": "access",
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return claims

    def encode(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": kid or self.kid})

    def user(self, user_id: int, **overrides: Any) -> str:
        return self.encode(self.claims(user_id, **overrides))

    def unsigned(self, user_id: int) -> str:
        """`alg: none`: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.kid}).encode())
        return f"{header}.{_b64(json.dumps(self.claims(user_id)).encode())}."

    def hs256_with_public_key(self, user_id: int) -> str:
        """The key-confusion attack: HMAC-signed with the RSA public key as the secret."""
        secret = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.kid}).encode())
        payload = _b64(json.dumps(self.claims(user_id)).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def tampered(self, user_id: int) -> str:
        """A valid token whose payload was edited afterwards (another user, staff)."""
        header, _, signature = self.user(user_id).split(".")
        forged = _b64(json.dumps(self.claims(1, is_staff=True)).encode())
        return f"{header}.{forged}.{signature}"

    @staticmethod
    def header(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}
