"""Minting the platform's JWTs, with the active signing key.

The claims are the platform contract that the chassis' `JWTAuthentication`
verifies in every service (iss, aud, sub, token_use, iat, exp, jti; header kid).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings

from comptoir._scopes import client_scopes

from .keys import ALGORITHM, active_signing_key
from .models import ServiceClient, User

ACCESS = "access"
SERVICE = "service"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def _sign(claims: dict[str, Any], *, lifetime_s: int) -> IssuedToken:
    key = active_signing_key()
    now = int(time.time())
    payload = {
        "iss": settings.JWT_ISSUER,
        **claims,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(payload, key.signer(), algorithm=ALGORITHM, headers={"kid": key.kid})
    return IssuedToken(token=token, expires_in=lifetime_s)


def access_token_issue(*, user: User, session_id: str) -> IssuedToken:
    """An access token of one login session (`sid`: what logout revokes)."""
    return _sign(
        {
            "aud": settings.JWT_AUDIENCE,
            "sub": str(user.pk),
            "sid": session_id,
            "email": user.email,
            "is_staff": user.is_staff,
            "token_use": ACCESS,
        },
        lifetime_s=settings.JWT_ACCESS_TOKEN_LIFETIME_S,
    )


def service_token_issue(*, client: ServiceClient) -> IssuedToken:
    return _sign(
        {
            "aud": settings.JWT_SERVICE_AUDIENCE,
            "sub": f"service:{client.name}",
            "token_use": SERVICE,
            # What this client may ask of the others (comptoir._scopes.SERVICE_CLIENT_SCOPES).
            "scope": " ".join(client_scopes(client.name)),
        },
        lifetime_s=settings.JWT_SERVICE_TOKEN_LIFETIME_S,
    )
