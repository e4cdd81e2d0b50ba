"""Who is calling: RS256 access tokens issued by user_service, checked against its JWKS.

The algorithm is pinned to RS256 (no `none`, no HS256 with the public key as a
secret); `exp`, `iat`, `iss`, `aud` and `sub` are required and `token_use` must
be "access" (service tokens are for `/internal/`, which the gateway never
routes). Keys come from user_service's JWKS, fetched with the gateway's own
aiohttp session (never blocking the event loop), cached for `jwks_lifetime_s`
and refetched when a token names an unknown `kid` (key rotation), at most once
per `jwks_refetch_cooldown_s` so random `kid`s cannot hammer user_service.

A token whose signature and claims were verified is remembered (keyed by the
whole token string) until its `exp` or for `verified_cache_ttl_s`, whichever
comes first, so a client's repeated requests cost one dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from .config import AuthConfig

logger = logging.getLogger("gateway.auth")

ALGORITHM = "RS256"
ACCESS = "access"


class InvalidToken(Exception):
    """The token is not one this platform issued, or no longer valid."""


class KeysUnavailable(Exception):
    """The JWKS could not be fetched and no key is known yet."""


@dataclass(frozen=True)
class Identity:
    user_id: str
    claims: dict[str, Any]


class JWKSCache:
    def __init__(self, config: AuthConfig, session: aiohttp.ClientSession) -> None:
        self.url = config.jwks_url
        self.lifetime_s = config.jwks_lifetime_s
        self.cooldown_s = config.jwks_refetch_cooldown_s
        self.session = session
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at = float("-inf")
        self.attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self._timeout = aiohttp.ClientTimeout(total=5)

    async def _refresh(self) -> None:
        """One fetch at a time; callers that queued behind it reuse its result."""
        started = time.monotonic()
        async with self._lock:
            if self.attempted_at >= started:
                return
            self.attempted_at = time.monotonic()
            try:
                async with self.session.get(self.url, timeout=self._timeout) as response:
                    response.raise_for_status()
                    data = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                logger.warning(
                    "jwks fetch failed", extra={"url.full": self.url, "error.message": repr(error)}
                )
                return
            keys: dict[str, jwt.PyJWK] = {}
            for entry in data.get("keys", []) if isinstance(data, dict) else []:
                kid = entry.get("kid") if isinstance(entry, dict) else None
                if not isinstance(kid, str) or entry.get("kty") != "RSA":
                    continue
                try:
                    keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM)
                except jwt.PyJWTError as error:
                    logger.warning("jwks entry skipped", extra={"kid": kid, "error.message": repr(error)})
            self.keys = keys
            self.fetched_at = time.monotonic()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`; None when the (fresh) key set does not have it."""
        now = time.monotonic()
        stale = now - self.fetched_at > self.lifetime_s
        if (stale or kid not in self.keys) and (
            now - self.attempted_at > self.cooldown_s or self._lock.locked()
        ):
            # Past the cooldown, or a fetch is in flight: wait for (or make) a fresh key set.
            await self._refresh()
        if self.fetched_at == float("-inf"):
            raise KeysUnavailable("user_service's JWKS could not be fetched")
        return self.keys.get(kid)


class Authenticator:
    def __init__(self, config: AuthConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.jwks = JWKSCache(config, session)
        self._verified: dict[str, tuple[Identity, float]] = {}

    async def authenticate(self, token: str) -> Identity:
        """The verified identity behind `token`; raises InvalidToken or KeysUnavailable."""
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            identity, valid_until = cached
            if now < valid_until:
                return identity
            del self._verified[token]
        identity = await self._verify(token)
        exp = float(identity.claims["exp"])
        self._remember(token, identity, min(exp, now + self.config.verified_cache_ttl_s))
        return identity

    def _remember(self, token: str, identity: Identity, valid_until: float) -> None:
        if len(self._verified) >= self.config.verified_cache_size:
            # Oldest first: dicts keep insertion order.
            for stale in list(self._verified)[: max(1, len(self._verified) // 10)]:
                del self._verified[stale]
        self._verified[token] = (identity, valid_until)

    async def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed token: {error}") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("token algorithm must be RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        key = await self.jwks.key(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        if claims.get("token_use") != ACCESS:
            raise InvalidToken("not an access token")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.isdigit():
            raise InvalidToken("token subject is not a user id")
        return Identity(user_id=subject, claims=claims)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
