"""Who is calling: RS256 JWTs issued by user_service, verified with its JWKS.

Two kinds of token, both signed by user_service's keys:

- end-user access tokens: `aud` = settings.JWT_AUDIENCE, `token_use` = "access",
  `sub` = the user id, `email`, `is_staff`;
- service tokens (client credentials): `aud` = settings.JWT_SERVICE_AUDIENCE,
  `token_use` = "service", `sub` = "service:<name>". Only these open the
  `/internal/` endpoints, and the gateway never forwards to those.

The algorithm is pinned to RS256 (no `none`, no HS256 with a public key), and
`exp`, `iat`, `iss`, `aud` and `sub` are required. Keys come from the JWKS URL
through PyJWT's `PyJWKClient`, which caches them and refetches once when a
token names an unknown `kid` (key rotation). A service may instead name a
local JWKS provider (user_service does: it must not call itself over HTTP).

A token that verified is remembered until it expires, as long as the key that
signed it is still published: the same service token arrives on every internal
call, the same access token on every request of a session, and checking the
signature again each time was a tenth of a minimal request's CPU. A retired key
ends the validity of every remembered token it signed at once.

When the key set cannot be fetched (user_service down or not started yet) no
token can be judged: the request is answered 503 with Retry-After (the token
may well be valid), never 401, and the next request after the outage fetches
the keys again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ._errors import Unavailable
from ._logging import user_id_var

if TYPE_CHECKING:
    # Not at run time: rest_framework.views reads the authentication setting,
    # which names this module.
    from rest_framework.views import APIView

ALGORITHM = "RS256"
ACCESS = "access"
SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The verified caller: an end user, or another service."""

    user_id: int | None
    email: str
    is_staff: bool
    service: str | None
    claims: dict[str, Any] = field(repr=False, compare=False)

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> str:
        # DRF's user throttle keys on request.user.pk.
        return f"user:{self.user_id}" if self.service is None else f"service:{self.service}"

    @property
    def is_service(self) -> bool:
        return self.service is not None


class _LocalJWKClient(jwt.PyJWKClient):
    """A PyJWKClient whose key set comes from a function instead of HTTP.

    The function is asked every time (a rotation shows at once); the keys are
    built again only when the set it returns changes."""

    def __init__(self, provider: Callable[[], dict[str, Any]]) -> None:
        # The URI is never fetched: fetch_data below replaces the HTTP call.
        super().__init__("http://local.invalid/jwks", cache_keys=False, cache_jwk_set=False)
        self._provider = provider
        self._built: tuple[tuple[tuple[Any, ...], ...], jwt.PyJWKSet] | None = None

    def fetch_data(self) -> Any:
        return self._provider()

    def get_jwk_set(self, refresh: bool = False) -> jwt.PyJWKSet:
        data = self._as_jwk_set_payload(self._provider())
        fingerprint = tuple(
            (key.get("kid"), key.get("n"), key.get("e"), key.get("use"))
            for key in data.get("keys", [])
            if isinstance(key, dict)
        )
        built = self._built
        if built is None or built[0] != fingerprint:
            built = (fingerprint, jwt.PyJWKSet.from_dict(data))
            self._built = built
        return built[1]


_client_lock = threading.Lock()
_client: jwt.PyJWKClient | None = None


def _jwk_client() -> jwt.PyJWKClient:
    global _client
    with _client_lock:
        if _client is None:
            provider_path = getattr(settings, "COMPTOIR_JWKS_PROVIDER", None)
            if provider_path:
                _client = _LocalJWKClient(import_string(provider_path))
            else:
                _client = jwt.PyJWKClient(
                    settings.JWKS_URL, cache_keys=False, lifespan=300, timeout=5, cooldown_duration=5
                )
        return _client


_VERIFICATION_SETTINGS = frozenset(
    {"COMPTOIR_JWKS_PROVIDER", "JWKS_URL", "JWT_AUDIENCE", "JWT_SERVICE_AUDIENCE", "JWT_ISSUER"}
)


@receiver(setting_changed)
def _reset_client(*, setting: str, **kwargs: Any) -> None:
    global _client
    if setting in {"COMPTOIR_JWKS_PROVIDER", "JWKS_URL"}:
        with _client_lock:
            _client = None
    if setting in _VERIFICATION_SETTINGS:
        _verified.clear()


# Tokens that verified: token -> (claims, kid of the signing key, expiry as a Unix time).
VERIFIED_TOKENS_MAX = 10_000
_verified: dict[str, tuple[dict[str, Any], str, float]] = {}


class InvalidToken(Exception):
    """The token is not one this platform issued, or no longer valid."""


class KeysUnavailable(Exception):
    """The signing keys could not be fetched: no token can be judged for now."""


# Seconds a caller is asked to wait when the keys are unavailable (Retry-After).
KEYS_RETRY_AFTER_S = 5


def decode_token(token: str) -> dict[str, Any]:
    """Verifies a user or service token and returns its claims."""
    remembered = _verified.get(token)
    if remembered is not None:
        claims, kid, expires_at = remembered
        if time.time() < expires_at and _still_published(kid):
            return claims
        _verified.pop(token, None)
    claims, kid = _verify(token)
    if len(_verified) >= VERIFIED_TOKENS_MAX:
        _verified.clear()  # rare, and cheaper than tracking recency on every hit
    _verified[token] = (claims, kid, float(claims["exp"]))
    return claims


def _still_published(kid: str) -> bool:
    try:
        return any(key.key_id == kid for key in _jwk_client().get_signing_keys())
    except jwt.PyJWKClientConnectionError as error:
        raise KeysUnavailable(str(error)) from None
    except jwt.PyJWKClientError:
        return False


def _verify(token: str) -> tuple[dict[str, Any], str]:
    """The token's claims and its key id, after every check."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidToken(f"malformed token: {error}") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("token algorithm must be RS256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("token has no key id")
    try:
        key = _jwk_client().get_signing_key(kid).key
    except jwt.PyJWKClientConnectionError as error:
        raise KeysUnavailable(str(error)) from None
    except jwt.PyJWKClientError as error:
        raise InvalidToken(f"unknown signing key: {error}") from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=[settings.JWT_AUDIENCE, settings.JWT_SERVICE_AUDIENCE],
            issuer=settings.JWT_ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    use = claims.get("token_use")
    if use == ACCESS and settings.JWT_AUDIENCE in audience:
        return claims, kid
    if use == SERVICE and settings.JWT_SERVICE_AUDIENCE in audience:
        return claims, kid
    raise InvalidToken("token use does not match its audience")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    if claims.get("token_use") == SERVICE:
        subject = str(claims["sub"])
        return Principal(
            user_id=None,
            email="",
            is_staff=False,
            service=subject.removeprefix("service:"),
            claims=claims,
        )
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError):
        raise InvalidToken("token subject is not a user id") from None
    return Principal(
        user_id=user_id,
        email=str(claims.get("email", "")),
        is_staff=bool(claims.get("is_staff", False)),
        service=None,
        claims=claims,
    )


class JWTAuthentication(BaseAuthentication):
    """DRF authentication: `Authorization: Bearer <jwt>` → `request.user` = Principal."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            token = parts[1].decode("ascii")
            principal = principal_from_claims(decode_token(token))
        except (UnicodeDecodeError, InvalidToken) as error:
            raise AuthenticationFailed(f"Invalid token: {error}") from None
        except KeysUnavailable:
            raise Unavailable(
                "Token verification is unavailable: the signing keys cannot be fetched; retry shortly.",
                retry_after_s=KEYS_RETRY_AFTER_S,
            ) from None
        # Log lines of this request name the caller (reset by RequestIdMiddleware).
        user_id_var.set(principal.pk)
        return principal, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="comptoir"'


def _principal(request: Request) -> Principal | None:
    user = request.user
    return user if isinstance(user, Principal) else None


class IsEndUser(BasePermission):
    """An authenticated end user (service tokens do not pass)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        principal = _principal(request)
        return principal is not None and not principal.is_service


class IsStaff(BasePermission):
    """An authenticated end user with the staff flag."""

    message = "Staff only."

    def has_permission(self, request: Request, view: APIView) -> bool:
        principal = _principal(request)
        return principal is not None and not principal.is_service and principal.is_staff


class IsServiceClient(BasePermission):
    """Another service of the platform, authenticated by a service token."""

    message = "Internal endpoint: service credentials required."

    def has_permission(self, request: Request, view: APIView) -> bool:
        principal = _principal(request)
        return principal is not None and principal.is_service
