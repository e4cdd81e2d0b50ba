"""The ASGI application: `uvicorn gateway.app:app` (or `python -m gateway.serve`).

Layers, outermost first: observability (request id, trace context, security
headers, metrics, access log, last-resort 500) → CORS → dispatch: `/api/…` to
the proxy, everything else to the gateway's own routes (health, metrics, docs),
and anything unknown, `/internal/…` included, to a 404 in the standard body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import Authenticator
from .config import Settings, load_settings
from .context import context_of, current_request_id
from .docs import DOCS_CSP, DOCS_HTML, DocsMerger
from .errors import ErrorCode, error_body, send_error
from .health import readiness
from .metrics import render
from .observability import ObservabilityMiddleware, configure_logging, flush_periodically
from .proxy import Proxy
from .ratelimit import Limiter

OWN_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics", "/docs", "/openapi.json"})
# Keep-alive to the upstreams, shorter than their servers' own idle timeouts
# (uvicorn 5 s, gunicorn 2 s) so a pooled connection is never reused as it closes.
UPSTREAM_KEEPALIVE_S = 1.5


@dataclass
class Runtime:
    """What lives as long as the worker process: built at startup, closed at shutdown."""

    settings: Settings
    session: aiohttp.ClientSession | None = None
    limiter: Limiter | None = None
    proxy: Proxy | None = None
    docs: DocsMerger | None = None


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


def create_app(settings: Settings | None = None) -> ASGIApp:
    runtime = Runtime(settings=settings or load_settings())
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        config = runtime.settings
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
        )
        # aiohttp silently resends idempotent methods (PUT, DELETE too) once on a dropped
        # connection; the proxy owns that policy (GET/HEAD only, with backoff), so turn it off.
        session._retry_connection = False
        runtime.session = session
        runtime.limiter = Limiter(config.rate_limit) if config.rate_limit.enabled else None
        runtime.proxy = Proxy(config, session, Authenticator(config.auth, session), runtime.limiter)
        runtime.docs = DocsMerger(config, session)
        flusher = asyncio.create_task(flush_periodically())
        try:
            yield
        finally:
            flusher.cancel()
            for handler in logging.getLogger("gateway.access").handlers:
                handler.flush()
            await session.close()

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "api_gateway"})

    async def ready(request: Request) -> Response:
        assert runtime.session is not None
        # Ready once started: an upstream down makes only its routes answer 503, and
        # Redis down only lets traffic through unlimited; taking the gateway out of
        # rotation for either would turn one service's outage into everyone's.
        checks = await readiness(runtime.settings, runtime.session, runtime.limiter)
        failed = sorted(name for name, result in checks.items() if result != "ok")
        body = {
            "status": "degraded" if failed else "ok",
            "service": "api_gateway",
            "checks": checks,
            "failed": failed,
        }
        return JSONResponse(body, status_code=200)

    async def metrics(request: Request) -> Response:
        payload, content_type = render()
        return Response(payload, media_type=content_type)

    async def openapi(request: Request) -> Response:
        assert runtime.docs is not None
        return JSONResponse(await runtime.docs.openapi())

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML, headers={"Content-Security-Policy": DOCS_CSP})

    own = Starlette(
        routes=[
            Route("/health/live", live, methods=["GET"]),
            Route("/health/ready", ready, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        lifespan=lifespan,
    )

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/"):
                if _uri_bytes(scope) > runtime.settings.max_uri_bytes:
                    await _uri_too_long(scope, send, runtime.settings.max_uri_bytes)
                    return
                assert runtime.proxy is not None, "the lifespan must run before requests"
                await runtime.proxy(scope, receive, send)
                return
            context_of(scope).route = path if path in OWN_ROUTES else "other"
        await own(scope, receive, send)

    cors = runtime.settings.cors
    with_cors = CORS(
        dispatch,
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
            await dispatch(scope, receive, send)
        else:
            await with_cors(scope, receive, send)

    return ObservabilityMiddleware(entry, access_log=runtime.settings.access_log)


app = create_app()
