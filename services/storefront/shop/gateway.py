"""The storefront's one way to the platform: the gateway's public HTTP API.

`Gateway(request)` sends a call with the visitor's access token and turns every
answer that is not a success into `ApiError` (the platform's error body: code,
message, details, trace id), which the views show as a readable message.

Tokens: a login's access and refresh tokens are kept in the cache under a key of
their own (`auth:<id>`, the id in the session). An access token about to expire,
or one the gateway refuses with 401, is traded for a new pair with the refresh
token, under a lock in the cache: user_service rotates refresh tokens and
revokes the whole login when a spent one is shown again, so two requests racing
(the order page's poll and a click) must not both present the same one. The one
that waited finds the pair its neighbour stored and uses it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger("storefront.gateway")

REFRESH_MARGIN_S = 30
LOCK_TIMEOUT_S = 15
LOCK_WAIT_S = 10.0

_client: httpx.Client | None = None
_transport: httpx.BaseTransport | None = None


def use_transport(transport: httpx.BaseTransport | None) -> None:
    """Tests: send every call through `transport` (a stand-in gateway)."""
    global _client, _transport
    _transport = transport
    if _client is not None:
        _client.close()
    _client = None


def client() -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(
            base_url=settings.GATEWAY_URL,
            timeout=settings.GATEWAY_TIMEOUT_S,
            transport=_transport,
            headers={"User-Agent": "comptoir-storefront", "Accept": "application/json"},
        )
    return _client


@dataclass
class ApiError(Exception):
    """A failed call, with the platform's error body when the gateway sent one."""

    status: int
    code: str
    message: str
    details: Any = field(default_factory=dict)
    trace_id: str | None = None

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        trace_id = response.headers.get("X-Request-ID")
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(
                status=response.status_code,
                code=str(error.get("code") or "error"),
                message=str(error.get("message") or "The request failed."),
                details=error.get("details") or {},
                trace_id=error.get("trace_id") or trace_id,
            )
        return cls(
            status=response.status_code,
            code="bad_gateway" if response.status_code >= 500 else "error",
            message=f"The platform answered {response.status_code}; try again in a moment.",
            trace_id=trace_id,
        )

    def field_errors(self) -> list[str]:
        """Per-field problems of a validation error, as sentences."""
        if not isinstance(self.details, dict):
            return []
        found = []
        for name, problems in self.details.items():
            items = problems if isinstance(problems, list) else [problems]
            for problem in items:
                label = name.replace("_", " ")
                found.append(f"{label}: {problem}" if name != "non_field_errors" else str(problem))
        return found


class NotLoggedIn(Exception):
    """The visitor has no login, or it ended (expired, revoked): log in again."""


def unavailable(error: Exception) -> ApiError:
    logger.warning("gateway unreachable", extra={"error.message": repr(error)})
    return ApiError(
        status=503,
        code="unavailable",
        message="The shop cannot reach the platform right now; try again in a moment.",
    )


def _tokens_key(auth_id: str) -> str:
    return f"auth:{auth_id}"


def _store(auth_id: str, pair: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
    tokens = {
        "access": str(pair["access"]),
        "refresh": str(pair["refresh"]),
        "expires_at": time.time() + int(pair.get("expires_in") or 900),
        "user": user,
    }
    cache.set(_tokens_key(auth_id), tokens, timeout=settings.SESSION_COOKIE_AGE)
    return tokens


class Gateway:
    """Calls the gateway for one visitor (their tokens, their session)."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.last_trace_id: str | None = None

    # ------------------------------------------------------------- the login

    @property
    def auth_id(self) -> str | None:
        value = self.request.session.get("auth")
        return str(value) if value else None

    def tokens(self) -> dict[str, Any] | None:
        auth_id = self.auth_id
        if auth_id is None:
            return None
        found = cache.get(_tokens_key(auth_id))
        return found if isinstance(found, dict) else None

    def user(self) -> dict[str, Any] | None:
        """The profile stored at login ({id, email, full_name, is_staff}), or None."""
        tokens = self.tokens()
        user = tokens.get("user") if tokens else None
        return user if isinstance(user, dict) else None

    def login(self, email: str, password: str) -> dict[str, Any]:
        pair = self.call(
            "POST", "/api/users/auth/login/", json={"email": email, "password": password}, auth=False
        )
        profile = self.call("GET", "/api/users/me/", token=str(pair["access"]))
        self.request.session.cycle_key()
        auth_id = uuid.uuid4().hex
        self.request.session["auth"] = auth_id
        _store(auth_id, pair, _profile(profile))
        return _profile(profile)

    def logout(self) -> None:
        tokens = self.tokens()
        if tokens:
            with contextlib.suppress(ApiError, NotLoggedIn):  # the session ends here either way
                self.call("POST", "/api/users/auth/logout/", json={"refresh": tokens["refresh"]}, retry=False)
            cache.delete(_tokens_key(str(self.auth_id)))
        self.request.session.flush()

    def remember_profile(self, profile: dict[str, Any]) -> None:
        tokens = self.tokens()
        if tokens and self.auth_id:
            tokens["user"] = _profile(profile)
            cache.set(_tokens_key(self.auth_id), tokens, timeout=settings.SESSION_COOKIE_AGE)

    def _access_token(self) -> str:
        tokens = self.tokens()
        if tokens is None:
            raise NotLoggedIn
        if float(tokens.get("expires_at", 0)) - REFRESH_MARGIN_S <= time.time():
            tokens = self._refresh(str(tokens["access"]))
        return str(tokens["access"])

    def _refresh(self, stale_access: str) -> dict[str, Any]:
        """A fresh pair in place of the one whose access token was `stale_access`."""
        auth_id = self.auth_id
        if auth_id is None:
            raise NotLoggedIn
        key = _tokens_key(auth_id)
        lock = f"{key}:refreshing"
        deadline = time.monotonic() + LOCK_WAIT_S
        while not cache.add(lock, "1", timeout=LOCK_TIMEOUT_S):
            if time.monotonic() > deadline:
                raise unavailable(TimeoutError("token refresh lock"))
            time.sleep(0.05)
        try:
            tokens = cache.get(key)
            if not isinstance(tokens, dict):
                raise NotLoggedIn
            if tokens["access"] != stale_access:
                return tokens  # a request beside this one refreshed already
            try:
                response = client().post("/api/users/auth/refresh/", json={"refresh": tokens["refresh"]})
            except httpx.HTTPError as error:
                raise unavailable(error) from error
            if response.status_code in (400, 401, 403):
                cache.delete(key)
                raise NotLoggedIn
            if response.status_code >= 300:
                raise ApiError.from_response(response)
            return _store(auth_id, response.json(), tokens.get("user"))
        finally:
            cache.delete(lock)

    # ------------------------------------------------------------- the calls

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        token: str | None = None,
        retry: bool = True,
    ) -> Any:
        """The decoded JSON body of a 2xx answer (None when empty); `ApiError` otherwise.

        `auth`: with the visitor's access token (`NotLoggedIn` without a login).
        """
        sent_headers = dict(headers or {})
        # One trace per call, named by the storefront: the request id the platform
        # quotes in its error bodies is then the trace id the console looks up.
        trace_id = new_trace_id()
        self.last_trace_id = trace_id
        sent_headers.setdefault("X-Request-ID", trace_id)
        sent_headers.setdefault("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01")
        # The visitor's address, not the storefront's: the gateway's per-address limits
        # (anonymous requests, logins) count each visitor apart where it trusts the
        # storefront as a proxy (GATEWAY_TRUSTED_PROXIES; the chart's default does).
        visitor = self.request.META.get("REMOTE_ADDR")
        if visitor:
            sent_headers.setdefault("X-Forwarded-For", str(visitor))
        if token is None and auth:
            token = self._access_token()
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = client().request(method, path, json=json, params=clean, headers=sent_headers)
        except httpx.HTTPError as error:
            raise unavailable(error) from error
        if response.status_code == 401 and auth and retry and token is not None:
            # Expired early, or revoked: one refresh, then the call once more.
            self._refresh(token)
            return self.call(method, path, json=json, params=params, headers=headers, retry=False)
        if response.status_code == 401 and auth:
            raise NotLoggedIn
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise ApiError(
                status=502, code="bad_gateway", message="The platform answered something unreadable."
            ) from error


def new_trace_id() -> str:
    return secrets.token_hex(16)


def _profile(profile: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": profile.get("id"),
        "email": profile.get("email", ""),
        "full_name": profile.get("full_name", ""),
        "is_staff": bool(profile.get("is_staff", False)),
    }
