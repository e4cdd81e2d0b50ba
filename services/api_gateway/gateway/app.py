"""The ASGI application: `uvicorn gateway.app:app` (or `python -m gateway.serve`).

Layers, outermost first: the client's address (from `X-Forwarded-For` when the
connection comes from a trusted proxy) → observability (request id, trace context, security
headers, metrics, access log, last-resort 500) → CORS → dispatch: `/api/…` to
the proxy (or, for `/api/ops/health/`, `/api/ops/traces/…` and `/api/ops/metrics/`,
to the staff-only operations routes of `gateway.ops`), everything else to the
gateway's own routes (health, docs; metrics are
served on a port of their own, see `gateway.serve`),
and anything unknown, `/internal/…` included, to a 404 in the standard body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import aiohttp
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .auth import Authenticator
from .config import Settings, load_settings
from .context import context_of, current_request_id
from .docs import ASSETS_PREFIX, DOCS_ASSETS, DOCS_CSP, DOCS_HTML, DocsMerger, docs_asset
from .errors import ErrorCode, error_body, send_error
from .health import readiness
from .observability import (
    ObservabilityMiddleware,
    configure_logging,
    flush_periodically,
    upstream_trace_configs,
)
from .ops import Operations
from .proxy import Proxy
from .ratelimit import Limiter
from .revocation import Revocations

OWN_ROUTES = frozenset({"/health/live", "/health/ready", "/docs", "/openapi.json"})
# Keep-alive to the upstreams, shorter than their servers' own idle timeouts
# (uvicorn 5 s, gunicorn 2 s) so a pooled connection is never reused as it closes.
UPSTREAM_KEEPALIVE_S = 1.5
REVOCATIONS_LOAD_S = 2.0


class ReadinessCache:
    """One readiness report at a time, reused for `ttl_s`: probes and callers
    hammering `/health/ready` cost the upstreams one check per period."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, limiter: Limiter | None) -> None:
        self.settings = settings
        self.session = session
        self.limiter = limiter
        self.report: dict[str, str] = {}
        self.taken_at = float("-inf")
        self._lock = asyncio.Lock()

    async def checks(self) -> dict[str, str]:
        if time.monotonic() - self.taken_at < self.settings.health_cache_s:
            return self.report
        async with self._lock:  # callers that queued behind a check reuse its report
            if time.monotonic() - self.taken_at >= self.settings.health_cache_s:
                self.report = await readiness(self.settings, self.session, self.limiter)
                self.taken_at = time.monotonic()
            return self.report


def _error(request: Request, status: int, code: ErrorCode, message: str) -> Response:
    trace_id = context_of(request.scope).request_id
    return Response(
        error_body(code, message, trace_id=trace_id),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return _error(request, 404, ErrorCode.NOT_FOUND, "No such resource.")
    if status == 405:
        return _error(request, 405, ErrorCode.METHOD_NOT_ALLOWED, "Method not allowed.")
    return _error(request, status, ErrorCode.BAD_REQUEST, "Bad request.")


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(request, 500, ErrorCode.INTERNAL_ERROR, "An unexpected error occurred.")


def _uri_bytes(scope: Scope) -> int:
    query: bytes = scope.get("query_string", b"")
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    return len(raw_path) + (len(query) + 1 if query else 0)


async def _uri_too_long(scope: Scope, send: Send, limit: int) -> None:
    context = context_of(scope)
    context.route = "other"
    context.error_code = ErrorCode.URI_TOO_LONG
    await send_error(
        send,
        414,
        ErrorCode.URI_TOO_LONG,
        f"The URI (path and query) exceeds {limit} bytes.",
        trace_id=context.request_id,
        details={"max_bytes": limit},
    )


class CORS(CORSMiddleware):
    """Starlette's CORS middleware; a refused preflight answers in the standard error body."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        reason = bytes(response.body).decode()
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}
        return Response(
            error_body(ErrorCode.CORS_REFUSED, reason + ".", trace_id=current_request_id.get()),
            status_code=400,
            media_type="application/json",
            headers={**headers, "Cache-Control": "no-store"},
        )


class Runtime:
    """What lives as long as the worker process (built at startup by `lifespan`, closed
    at shutdown) and the gateway's own routes and dispatch, which use it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        self.limiter: Limiter | None = None
        self.proxy: Proxy | None = None
        self.docs: DocsMerger | None = None
        self.readiness: ReadinessCache | None = None
        self.operations: Operations | None = None
        self.own = Starlette(
            routes=[
                Route("/health/live", self.live, methods=["GET"]),
                Route("/health/ready", self.ready, methods=["GET"]),
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/docs", self.docs_page, methods=["GET"]),
                Route(ASSETS_PREFIX + "{name}", self.docs_assets, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_exception, Exception: _server_error},
            lifespan=self.lifespan,
        )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        config = self.settings
        session = self.session = _upstream_session(config)
        self.limiter = Limiter(config.rate_limit) if config.rate_limit.enabled else None
        revocations = Revocations(config.auth.revocation_redis_url)
        self.proxy = Proxy(config, session, Authenticator(config.auth, session), self.limiter, revocations)
        self.docs = DocsMerger(config, session)
        self.readiness = ReadinessCache(config, session, self.limiter)
        self.operations = Operations(config, session, self.proxy, self.readiness.checks)
        flusher = asyncio.create_task(flush_periodically())
        follower = asyncio.create_task(revocations.follow())
        # Serve knowing the revocations when Redis answers; without it, serve anyway.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(revocations.loaded.wait(), REVOCATIONS_LOAD_S)
        try:
            yield
        finally:
            flusher.cancel()
            follower.cancel()
            for handler in logging.getLogger("gateway.access").handlers:
                handler.flush()
            await session.close()

    async def live(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "api_gateway"})

    async def ready(self, request: Request) -> Response:
        assert self.readiness is not None
        # Ready once started: an upstream down makes only its routes answer 503, and
        # Redis down only lets traffic through unlimited; taking the gateway out of
        # rotation for either would turn one service's outage into everyone's.
        checks = await self.readiness.checks()
        failed = sorted(name for name, result in checks.items() if result != "ok")
        body = {
            "status": "degraded" if failed else "ok",
            "service": "api_gateway",
            "checks": checks,
            "failed": failed,
        }
        return JSONResponse(body, status_code=200)

    async def openapi(self, request: Request) -> Response:
        assert self.docs is not None
        return JSONResponse(await self.docs.openapi())

    async def docs_page(self, request: Request) -> Response:
        return HTMLResponse(DOCS_HTML, headers={"Content-Security-Policy": DOCS_CSP})

    async def docs_assets(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        content = docs_asset(name)
        if content is None:
            return _error(request, 404, ErrorCode.NOT_FOUND, "No such file.")
        return Response(
            content,
            media_type=DOCS_ASSETS[name],
            headers={"Cache-Control": "public, max-age=3600", "Content-Security-Policy": DOCS_CSP},
        )

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`/api/…` to the proxy or the operations routes, the rest to the gateway's own."""
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/"):
                if _uri_bytes(scope) > self.settings.max_uri_bytes:
                    await _uri_too_long(scope, send, self.settings.max_uri_bytes)
                    return
                assert self.proxy is not None, "the lifespan must run before requests"
                if Operations.handles(path):
                    assert self.operations is not None
                    await self.operations(scope, receive, send)
                    return
                await self.proxy(scope, receive, send)
                return
            context_of(scope).route = (
                path if path in OWN_ROUTES else ASSETS_PREFIX if path.startswith(ASSETS_PREFIX) else "other"
            )
        await self.own(scope, receive, send)


def _upstream_session(config: Settings) -> aiohttp.ClientSession:
    """One pooled, keep-alive client session to every upstream."""
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=config.pool_size,
        keepalive_timeout=UPSTREAM_KEEPALIVE_S,
        ttl_dns_cache=300,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,  # bodies pass through as the upstream encoded them
        cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to another
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        trust_env=False,
        trace_configs=upstream_trace_configs(),
    )
    # aiohttp silently resends idempotent methods (PUT, DELETE too) once on a dropped
    # connection; the proxy owns that policy (GET/HEAD only, with backoff), so turn it off.
    session._retry_connection = False
    return session


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The layers around the runtime's dispatch: client address, observability, CORS."""
    runtime = Runtime(settings or load_settings())
    configure_logging()
    cors = runtime.settings.cors
    with_cors = CORS(
        runtime.dispatch,
        allow_origins=list(cors.allow_origins),
        allow_methods=list(cors.allow_methods),
        allow_headers=list(cors.allow_headers),
        expose_headers=list(cors.expose_headers),
        allow_credentials=cors.allow_credentials,
        max_age=cors.max_age,
    )

    async def entry(scope: Scope, receive: Receive, send: Send) -> None:
        # CORS only concerns requests that carry an Origin; the rest skip its layer.
        if scope["type"] == "http" and not context_of(scope).has_origin:
            await runtime.dispatch(scope, receive, send)
        else:
            await with_cors(scope, receive, send)

    observed = ObservabilityMiddleware(entry, access_log=runtime.settings.access_log)
    if not runtime.settings.trusted_proxies:
        return observed
    # uvicorn's middleware: from a trusted proxy, the client is the right-most
    # X-Forwarded-For address that is not itself a trusted proxy.
    # (uvicorn types ASGI with its own TypedDicts, Starlette with mappings: same protocol.)
    trusting = ProxyHeadersMiddleware(observed, trusted_hosts=list(runtime.settings.trusted_proxies))  # type: ignore[arg-type]
    return cast(ASGIApp, trusting)


app = create_app()
