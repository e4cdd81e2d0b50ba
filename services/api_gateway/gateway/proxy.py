"""Forwarding `/api/…` to the owning service, streaming, over pooled keep-alive connections.

One request, in order: route by longest prefix (no route → 404, so `/internal/`
is never reachable); refuse `.`/`..` path segments; body size (413); token
(verified when present and not revoked, required unless the route is public → 401); rate limit
(429 + Retry-After; on the login route also per account, counting the 401s the
service answered); the whole body, read within `body_timeout_s` (408), so a
client trickling its body holds a cheap coroutine here, never one of a service's
sync workers; circuit breaker (open → 503 at once); forward with header hygiene;
map transport failures to 503 (refused: the service is down), 502 (reset) and
504 (timeout). GET/HEAD are retried on connection failures with jittered
exponential backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from .auth import Authenticator, Identity, InvalidToken, KeysUnavailable, bearer_token
from .breaker import CircuitBreaker, State
from .config import Settings, Upstream
from .context import RequestContext, context_of, current_request_id
from .errors import ErrorCode, GatewayError, send_error
from .metrics import BREAKER_STATE, RATE_LIMITED, UPSTREAM_ERRORS
from .ratelimit import Limiter
from .revocation import Revocations

logger = logging.getLogger("gateway.proxy")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself, or never forwarded from a client.
REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-request-id",
    b"traceparent",
    b"forwarded",
    b"x-real-ip",
}
REQUEST_DROP_PREFIXES = (b"x-forwarded-", b"x-user-")
RESPONSE_DROP = HOP_BY_HOP | {b"server", b"date", b"x-request-id", b"x-powered-by"}

IDEMPOTENT = frozenset({"GET", "HEAD"})
BUFFER_BELOW = 64 * 1024  # upstream answers smaller than this are relayed in one piece
CHUNK = 64 * 1024
RETRYABLE = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


@dataclass
class UpstreamLink:
    upstream: Upstream
    breaker: CircuitBreaker
    timeout: aiohttp.ClientTimeout


def _breaker_changed(name: str, state: State) -> None:
    BREAKER_STATE.labels(name).set(int(state))
    logger.warning("circuit breaker changed", extra={"upstream": name, "state": state.name.lower()})


class Proxy:
    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        authenticator: Authenticator,
        limiter: Limiter | None,
        revocations: Revocations | None = None,
    ) -> None:
        self.settings = settings
        self.revocations = revocations
        self.session = session
        self.authenticator = authenticator
        self.limiter = limiter
        self.links: dict[str, UpstreamLink] = {}
        for name, upstream in settings.upstreams.items():
            breaker = CircuitBreaker(
                name,
                failure_threshold=settings.breaker_failure_threshold,
                reset_timeout_s=settings.breaker_reset_timeout_s,
                on_change=_breaker_changed,
            )
            BREAKER_STATE.labels(name).set(0)
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=settings.connect_timeout_s,
                sock_connect=settings.connect_timeout_s,
                sock_read=upstream.timeout_s,
            )
            self.links[name] = UpstreamLink(upstream=upstream, breaker=breaker, timeout=timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = context_of(scope)
        try:
            await self._handle(scope, receive, send)
        except GatewayError as error:
            context.error_code = error.code
            await send_error(
                send,
                error.status,
                error.code,
                error.message,
                trace_id=context.request_id,
                details=error.details,
                headers=error.headers,
            )
        except ClientGone:
            context.error_code = "client_closed_request"

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = context_of(scope)
        path: str = scope["path"]
        method: str = scope["method"]
        route = self.settings.route_for(path)
        if route is None or any(segment in {".", ".."} for segment in path.split("/")):
            raise GatewayError(404, ErrorCode.NOT_FOUND, "No such resource.")
        context.route = route.prefix
        context.upstream = route.upstream
        link = self.links[route.upstream]

        client = _ClientHeaders.read(scope["headers"])
        max_body = self.settings.max_body_bytes
        if client.content_length is not None and client.content_length > max_body:
            raise GatewayError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"The request body exceeds {max_body} bytes.",
                details={"max_bytes": max_body},
            )
        login = method == "POST" and path in self.settings.rate_limit.login_paths
        await self._admit(context, method, path, client.authorization, login=login)

        body: bytes | None = None
        content_length = client.content_length
        if (client.chunked and content_length is None) or content_length:
            # Read whole (bounded by the size limit and the deadline) before the
            # upstream sees anything; a chunked body then gets a Content-Length
            # too (WSGI services ignore chunked bodies).
            body = await _read_body(receive, max_body, self.settings.body_timeout_s)
            content_length = len(body)
        account = _login_account(body) if login and self.limiter is not None else None
        if account is not None:
            await self._refuse_locked_account(account)

        headers = self._upstream_headers(scope, client)
        if content_length is not None and (body is not None or method not in IDEMPOTENT):
            headers["Content-Length"] = str(content_length)
        status = await self._forward(link, method, _target(link, scope), headers, body, send)
        if account is not None and status == 401 and self.limiter is not None:
            await self.limiter.count("login_failures", account)

    async def _admit(
        self, context: RequestContext, method: str, path: str, authorization: bytes | None, *, login: bool
    ) -> None:
        """The gates before a request is read further: token (401), rate limit (429), staff (403)."""
        identity = await self._authenticate(authorization)
        if identity is not None:
            context.user_id = identity.user_id
        await self._rate_limit(login, identity, context.client_ip)
        if identity is None and not self.settings.is_public(method, path):
            raise _unauthenticated(authorization)
        if self.settings.is_staff_only(path):
            require_staff(identity)

    def _upstream_headers(self, scope: Scope, client: _ClientHeaders) -> CIMultiDict[str]:
        """The client's forwardable headers plus the gateway's: who asked, how, and the ids."""
        context = context_of(scope)
        forwarded = client.forwarded
        if client.connection_tokens:
            forwarded = [(n, v) for n, v in forwarded if n not in client.connection_tokens]
        headers = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in forwarded)
        headers["X-Forwarded-For"] = context.client_ip
        headers["X-Forwarded-Proto"] = scope.get("scheme", "http")
        if client.host is not None:
            # The services build absolute links (pagination) from Host: keep the gateway's.
            headers["X-Forwarded-Host"] = client.host.decode("latin-1")
            if self.settings.preserve_host:
                headers["Host"] = headers["X-Forwarded-Host"]
        headers["X-Request-ID"] = context.request_id
        headers["traceparent"] = context.traceparent
        return headers

    async def admit_staff(self, scope: Scope) -> Identity:
        """The gates of the gateway's own staff routes: token (401), rate limit (429), staff (403)."""
        context = context_of(scope)
        authorization = next((v for n, v in scope["headers"] if n == b"authorization"), None)
        identity = await self._authenticate(authorization)
        if identity is not None:
            context.user_id = identity.user_id
        await self._rate_limit(False, identity, context.client_ip)
        if identity is None:
            raise _unauthenticated(authorization)
        require_staff(identity)
        return identity

    async def _authenticate(self, authorization: bytes | None) -> Identity | None:
        token = bearer_token(authorization.decode("latin-1") if authorization else None)
        if token is None:
            return None
        try:
            identity = await self.authenticator.authenticate(token)
            if self.revocations is not None and self.revocations.revoked(identity.claims):
                raise InvalidToken("token revoked (logout or deactivation)")
            return identity
        except InvalidToken as error:
            logger.info("token refused", extra={"reason": str(error), "request_id": current_request_id.get()})
            return None
        except KeysUnavailable:
            raise GatewayError(
                503, ErrorCode.UNAVAILABLE, "Token verification is unavailable; retry shortly."
            ) from None

    async def _refuse_locked_account(self, account: str) -> None:
        assert self.limiter is not None
        wait = await self.limiter.exhausted("login_failures", account)
        if wait is not None:
            RATE_LIMITED.labels("login_failures").inc()
            raise GatewayError(
                429,
                ErrorCode.THROTTLED,
                f"Too many failed logins for this account; retry in {wait} s.",
                details={"retry_after_s": wait},
                headers={"Retry-After": str(wait)},
            )

    async def _rate_limit(self, login: bool, identity: Identity | None, client_ip: str) -> None:
        if self.limiter is None:
            return
        if login:
            budget, who = "login", client_ip
        elif identity is not None:
            budget, who = "user", identity.user_id
        else:
            budget, who = "ip", client_ip
        wait = await self.limiter.retry_after(budget, who)
        if wait is not None:
            RATE_LIMITED.labels(budget).inc()
            raise GatewayError(
                429,
                ErrorCode.THROTTLED,
                f"Too many requests; retry in {wait} s.",
                details={"retry_after_s": wait},
                headers={"Retry-After": str(wait)},
            )

    async def _forward(
        self,
        link: UpstreamLink,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        send: Send,
    ) -> int:
        """Forwards the request and relays the answer; returns the upstream's status."""
        name = link.upstream.name
        breaker = link.breaker
        if not breaker.allow():
            UPSTREAM_ERRORS.labels(name, "circuit_open").inc()
            raise GatewayError(
                503,
                ErrorCode.UPSTREAM_UNAVAILABLE,
                f"{name} is unavailable; retry shortly.",
                details={"upstream": name},
                headers={"Retry-After": str(breaker.retry_after())},
            )
        attempts = 1 + (self.settings.retries if method in IDEMPOTENT else 0)
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(link.upstream.timeout_s):
                    response = await self.session.request(
                        method, url, headers=headers, data=body, allow_redirects=False, timeout=link.timeout
                    )
            except TimeoutError:
                breaker.record_failure()
                UPSTREAM_ERRORS.labels(name, "timeout").inc()
                raise GatewayError(
                    504,
                    ErrorCode.UPSTREAM_TIMEOUT,
                    f"{name} did not answer within {link.upstream.timeout_s:g} s.",
                    details={"upstream": name},
                ) from None
            except RETRYABLE as error:
                if attempt + 1 < attempts:
                    base = self.settings.retry_backoff_s * (2**attempt)
                    await asyncio.sleep(random.uniform(base / 2, base))  # noqa: S311 - jitter
                    continue
                breaker.record_failure()
                if isinstance(error, aiohttp.ClientConnectorError):
                    # Nothing answers there: the service is down, not misbehaving.
                    UPSTREAM_ERRORS.labels(name, "refused").inc()
                    raise GatewayError(
                        503,
                        ErrorCode.UPSTREAM_UNAVAILABLE,
                        f"{name} is unavailable; retry shortly.",
                        details={"upstream": name},
                        headers={
                            "Retry-After": str(breaker.retry_after() if breaker.state is State.OPEN else 1)
                        },
                    ) from None
                UPSTREAM_ERRORS.labels(name, "disconnected").inc()
                raise GatewayError(
                    502, ErrorCode.BAD_GATEWAY, f"{name} could not be reached.", details={"upstream": name}
                ) from None
            except aiohttp.ClientError:
                breaker.record_failure()
                UPSTREAM_ERRORS.labels(name, "protocol").inc()
                raise GatewayError(
                    502, ErrorCode.BAD_GATEWAY, f"{name} sent an invalid answer.", details={"upstream": name}
                ) from None
            breaker.record_success()
            break
        else:  # pragma: no cover - the loop either breaks or raises
            raise AssertionError("unreachable")
        await _relay(response, method, send, name)
        return response.status


def _unauthenticated(authorization: bytes | None) -> GatewayError:
    if authorization is None:
        return GatewayError(
            401,
            ErrorCode.NOT_AUTHENTICATED,
            "Authentication credentials were not provided.",
            headers={"WWW-Authenticate": 'Bearer realm="comptoir"'},
        )
    return GatewayError(
        401,
        ErrorCode.AUTHENTICATION_FAILED,
        "The access token is not valid.",
        headers={"WWW-Authenticate": 'Bearer realm="comptoir", error="invalid_token"'},
    )


def require_staff(identity: Identity | None) -> None:
    """The staff-only paths: an end user whose access token says `is_staff`."""
    if identity is not None and identity.claims.get("is_staff") is not True:
        raise GatewayError(403, ErrorCode.PERMISSION_DENIED, "Staff only.")


def _login_account(body: bytes | None) -> str | None:
    """Who a login names (its email, normalized and hashed: no address is kept
    in Redis), or None when the body names nobody (the service answers 400)."""
    try:
        email = json.loads(body or b"").get("email")
    except (ValueError, AttributeError):
        return None
    if not isinstance(email, str) or not email.strip():
        return None
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def _relay(response: aiohttp.ClientResponse, method: str, send: Send, name: str) -> None:
    """The upstream's answer to the client: headers cleaned, body streamed."""
    try:
        raw = response.raw_headers
        drop = RESPONSE_DROP
        connection = response.headers.get("Connection")
        if connection:
            drop = drop | {t.strip().lower().encode() for t in connection.split(",")}
        headers = [(n.lower(), v) for n, v in raw if n.lower() not in drop]
        length = response.content_length
        if method == "HEAD" or response.status in (204, 304):
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if length is not None and length <= BUFFER_BELOW:
            content = await response.read()
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as error:
            UPSTREAM_ERRORS.labels(name, "aborted").inc()
            logger.warning(
                "upstream response aborted mid-stream", extra={"upstream": name, "error.message": repr(error)}
            )
            raise
        await send({"type": "http.response.body", "body": b""})
    finally:
        response.release()


async def _read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    try:
        async with asyncio.timeout(timeout_s):
            return await _receive_body(receive, limit)
    except TimeoutError:
        raise GatewayError(
            408,
            ErrorCode.REQUEST_TIMEOUT,
            f"The request body did not arrive within {timeout_s:g} s.",
            details={"timeout_s": timeout_s},
            headers={"Connection": "close"},
        ) from None


async def _receive_body(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise GatewayError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"The request body exceeds {limit} bytes.",
                details={"max_bytes": limit},
            )
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


@dataclass
class _ClientHeaders:
    """One pass over the client's headers: what may be forwarded, and what the proxy reads."""

    forwarded: list[tuple[bytes, bytes]]
    content_length: int | None = None
    chunked: bool = False
    authorization: bytes | None = None
    host: bytes | None = None
    connection_tokens: frozenset[bytes] = frozenset()

    @classmethod
    def read(cls, raw: list[tuple[bytes, bytes]]) -> _ClientHeaders:
        client = cls(forwarded=[])
        for name, value in raw:
            if name in REQUEST_DROP or name.startswith(REQUEST_DROP_PREFIXES):
                if name == b"host":
                    client.host = value
                elif name == b"content-length":
                    try:
                        client.content_length = int(value)
                    except ValueError:
                        raise GatewayError(400, ErrorCode.BAD_REQUEST, "Invalid Content-Length.") from None
                elif name == b"transfer-encoding":
                    client.chunked = True
                elif name == b"connection":
                    client.connection_tokens = frozenset(token.strip().lower() for token in value.split(b","))
                continue
            if name == b"authorization":
                client.authorization = value
            client.forwarded.append((name, value))
        return client


def _target(link: UpstreamLink, scope: Scope) -> URL:
    """The upstream URL: the client's path and query, exactly as they came."""
    query = scope.get("query_string", b"")
    raw_path = scope.get("raw_path") or scope["path"].encode()
    target = link.upstream.url + raw_path.decode("latin-1")
    if query:
        target += "?" + query.decode("latin-1")
    return URL(target, encoded=True)
