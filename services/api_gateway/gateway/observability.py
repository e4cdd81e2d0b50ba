"""The outermost layer: request id, trace context, security headers, metrics,
one JSON access log line per request, and a last-resort 500 that reveals nothing."""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time

from prometheus_client import Counter, Histogram
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import SCOPE_KEY, RequestContext, current_request_id
from .errors import ErrorCode, send_error
from .metrics import LATENCY, REQUESTS

access_logger = logging.getLogger("gateway.access")
logger = logging.getLogger("gateway")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
TRACEPARENT = re.compile(rb"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"same-site"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stdout for the gateway's loggers."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger("gateway")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = traceparent = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"traceparent":
                traceparent = value
        client = scope.get("client")
        context = RequestContext(
            request_id=request_id.decode()
            if request_id is not None and SAFE_REQUEST_ID.match(request_id)
            else secrets.token_hex(16),
            traceparent=traceparent.decode()
            if traceparent is not None and TRACEPARENT.match(traceparent)
            else f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
            client_ip=client[0] if client else "unknown",
        )
        scope[SCOPE_KEY] = context
        request_id_token = current_request_id.set(context.request_id)
        extra_headers = [*SECURITY_HEADERS, (b"x-request-id", context.request_id.encode())]
        if scope.get("scheme") == "https":
            extra_headers.append(HSTS)
        status = 500
        sent = 0
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started, sent
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in extra_headers if n not in present]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            logger.exception(
                "unhandled error", extra={"request_id": context.request_id, "path": scope["path"]}
            )
            context.error_code = ErrorCode.INTERNAL_ERROR
            if started:
                raise
            await send_error(
                send_wrapper,
                500,
                ErrorCode.INTERNAL_ERROR,
                "An unexpected error occurred.",
                trace_id=context.request_id,
            )
        finally:
            current_request_id.reset(request_id_token)
            duration = time.perf_counter() - began
            self._observe(context.route, scope["method"], status, duration)
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "request_id": context.request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": context.route,
                        "upstream": context.upstream,
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                        "bytes": sent,
                        "client_ip": context.client_ip,
                        "user_id": context.user_id,
                        "error_code": context.error_code,
                        "traceparent": context.traceparent,
                    },
                )

    def _observe(self, route: str, method: str, status: int, duration: float) -> None:
        if method not in KNOWN_METHODS:
            method = "OTHER"  # a client must not be able to mint label values
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route))
            self._children[key] = children
        counter, histogram = children
        counter.inc()
        histogram.observe(duration)
