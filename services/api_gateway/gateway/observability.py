"""The outermost layer: request id, trace context, security headers, metrics,
one ECS JSON access line per request, and a last-resort 500 that reveals nothing.

Every line the gateway's processes write is an ECS JSON object (ecs-logging's
formatter, as in the Django services): its own records, uvicorn's (through
`logging_config`, which `gateway.serve` hands to uvicorn) and the access line,
which carries `service.name`, `http.request.id`, `trace.id`, `span.id`,
`http.request.method`, `url.path`, `http.response.status_code`,
`http.response.body.bytes`, `event.duration` (ns), `client.ip`, `user.id`,
`error.code` and the route and upstream as `labels`."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import logging.config
import os
import re
import secrets
import sys
import time
from typing import Any

import ecs_logging
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import SCOPE_KEY, RequestContext, current_request_id, current_traceparent
from .errors import ErrorCode, send_error
from .metrics import LATENCY, REQUESTS

SERVICE_NAME = "api_gateway"
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


# OpenTelemetry: set by `configure_tracing` when OTEL_EXPORTER_OTLP_ENDPOINT names a
# collector; None otherwise, and then the gateway only forwards a traceparent.
_tracer: Any = None
_client_trace_config: Any = None


def _sampler() -> Any:
    """Head sampling as in the services' chassis: a trace that starts here is kept with
    probability COMPTOIR_TRACE_SAMPLE_RATIO (default 0.1), a sampled incoming traceparent
    is followed; the standard OTEL_TRACES_SAMPLER replaces it when set (None: the SDK
    reads it)."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(TraceIdRatioBased(float(os.environ.get("COMPTOIR_TRACE_SAMPLE_RATIO", "0.1"))))


OTLP_PROTOCOLS = ("http/protobuf", "grpc")


class UnsupportedProtocolError(ValueError):
    """OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL names a protocol the gateway cannot export with."""


def otlp_protocol() -> str:
    """The OTLP protocol from the standard variables (the traces-specific one first)."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(name, "").strip().lower()
        if value:
            if value not in OTLP_PROTOCOLS:
                raise UnsupportedProtocolError(
                    f"{name}={value!r}: traces are exported over {' or '.join(OTLP_PROTOCOLS)}"
                )
            return value
    return "http/protobuf"


def otlp_span_exporter() -> Any:
    """OTLP over `otlp_protocol()`; endpoint, headers, timeout... from the standard variables."""
    if otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def configure_tracing() -> None:
    """A TracerProvider (service.name api_gateway) exporting OTLP (HTTP or gRPC, as
    OTEL_EXPORTER_OTLP_PROTOCOL says), and the upstream calls' CLIENT spans
    (`upstream_trace_configs`), so the trace starts here and continues upstream."""
    global _tracer, _client_trace_config
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if _tracer is not None or not endpoint or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or "api_gateway",
            "service.namespace": "comptoir",
        }
    )
    provider = TracerProvider(resource=resource, sampler=_sampler())
    provider.add_span_processor(BatchSpanProcessor(otlp_span_exporter(), schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _client_trace_config = _sampled_client_spans(provider)
    _tracer = trace.get_tracer("gateway")


def _sampled_client_spans(provider: Any) -> Any:
    """OpenTelemetry's aiohttp client instrumentation, for sampled requests only.

    Nine requests in ten are not sampled, and for those its CLIENT span records
    nothing, yet making it (the URL parsed and redacted, attributes, a span id,
    its traceparent) was an eighth of the gateway's CPU on a forwarded request.
    An unsampled request's upstream gets the gateway's own traceparent instead
    (same trace id, not sampled: `Proxy._upstream_headers`)."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    config = create_trace_config(tracer_provider=provider)
    (start_span,) = config.on_request_start

    async def start_span_when_sampled(session: Any, trace_config_ctx: Any, params: Any) -> None:
        # Without a span, the instrumentation's end and exception callbacks do nothing.
        if trace.get_current_span().is_recording():
            await start_span(session, trace_config_ctx, params)

    config.on_request_start[0] = start_span_when_sampled
    return config


def upstream_trace_configs() -> list[Any]:
    """The trace configs of the upstream client session (none without tracing)."""
    return [] if _client_trace_config is None else [_client_trace_config]


def _start_server_span(scope: Scope, traceparent: bytes | None) -> tuple[Any, Any, str]:
    """The gateway's SERVER span (child of a valid incoming traceparent), made current."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = (
        TraceContextTextMapPropagator().extract({"traceparent": traceparent.decode()})
        if traceparent is not None and TRACEPARENT.match(traceparent)
        else None
    )
    span = _tracer.start_span(
        f"{scope['method']} {scope['path']}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    span_context = span.get_span_context()
    own = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"
    return span, token, own


def _end_server_span(span: Any, token: Any, route: str, method: str, status: int) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    otel_context.detach(token)


def log_level() -> int:
    """LOG_LEVEL (as the services read it): DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    name = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise ValueError(f"LOG_LEVEL={name!r} is not a logging level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return level


class RequestContextFilter(logging.Filter):
    """Adds `service.name` and, inside a request, its `http.request.id`, `trace.id` and
    `span.id` to every record (fields a record already carries are kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        fields.setdefault("service.name", SERVICE_NAME)
        request_id = current_request_id.get()
        if request_id is not None:
            fields.setdefault("http.request.id", request_id)
        traceparent = current_traceparent.get()
        if traceparent is not None:
            fields.setdefault("trace.id", traceparent[3:35])
            fields.setdefault("span.id", traceparent[36:52])
        return True


def logging_config(level: int | None = None) -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping: ECS JSON lines on stdout for every logger
    of the process (the gateway's, uvicorn's, the libraries'), at `level` (default:
    LOG_LEVEL). `gateway.serve` gives it to uvicorn, so its lines are ECS too."""
    level_name = logging.getLevelName(log_level() if level is None else level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": RequestContextFilter}},
        "formatters": {
            "ecs": {
                "()": "ecs_logging.StdlibFormatter",
                # As in the services: the process/origin fields add little and cost bytes;
                # uvicorn's colour-coded copy of the message is for terminals.
                "exclude_fields": ["process", "log.origin", "log.original", "color_message"],
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "ecs",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level_name},
        "loggers": {
            "gateway": {"handlers": [], "level": level_name, "propagate": True},
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
            # The gateway writes its own access line.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "py.warnings": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


def configure_logging(level: int | None = None) -> None:
    """ECS JSON lines on stdout for every logger (`logging_config`), Python warnings
    included, at `level` (default: LOG_LEVEL); the access line has its own handler.

    The access log is on the hot path: its line is serialised once, here, and
    its handler only writes it (ecs-logging's formatter costs several times more
    per line: `access_line`)."""
    logging.config.dictConfig(logging_config(level))
    logging.captureWarnings(True)
    access_handler = BatchedLineHandler(sys.stdout.fileno())
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.handlers[:] = [access_handler]
    access_logger.setLevel(logging.INFO)
    access_logger.propagate = False
    configure_tracing()  # at the same moment: once per worker, before the upstream sessions exist


class BatchedLineHandler(logging.Handler):
    """Whole lines to a file descriptor, written in batches rather than one write per line.

    On this hot path a write system call per request costs more than building the
    line. Lines are flushed when 64 KiB have gathered, by the application every
    `FLUSH_INTERVAL_S` (see `flush_periodically`), and at exit.
    """

    FLUSH_BYTES = 64 * 1024
    FLUSH_INTERVAL_S = 0.2

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)
            return
        self.write_line(line)

    def write_line(self, line: str) -> None:
        """A line already formatted (the access log's fast path skips LogRecords)."""
        data = (line + "\n").encode()
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= self.FLUSH_BYTES:
            self._write()

    def flush(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._write()

    def _write(self) -> None:
        if not self.pending:
            return
        data = memoryview(b"".join(self.pending))
        self.pending.clear()
        self.pending_bytes = 0
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # the log's reader went away; requests go on


async def flush_periodically() -> None:
    """Runs for the worker's lifetime (started by the application's lifespan)."""
    while True:
        await asyncio.sleep(BatchedLineHandler.FLUSH_INTERVAL_S)
        for handler in access_logger.handlers:
            handler.flush()


_dumps = json.JSONEncoder(ensure_ascii=True).encode
_second_cache: tuple[int, str] = (-1, "")
# ecs-logging's version of the schema, as its formatter writes it on every line.
ECS_VERSION = ecs_logging.ECS_VERSION


def _timestamp(now: float) -> str:
    """`@timestamp` as ecs-logging writes it (UTC, milliseconds, `Z`); the part up to
    the second is computed once a second."""
    global _second_cache
    second = int(now)
    if _second_cache[0] != second:
        _second_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_cache[1]}.{int((now - second) * 1000):03d}Z"


def access_line(
    *,
    request_id: str,
    method: str,
    path: str,
    route: str,
    upstream: str | None,
    status: int,
    duration_ns: int,
    sent: int,
    client_ip: str,
    user_id: str | None,
    error_code: str | None,
    traceparent: str,
    now: float | None = None,
) -> str:
    """One ECS JSON object, assembled directly: this runs for every request.

    It is the line ecs-logging's formatter writes for a record with these fields
    (same keys, nesting and order; a test holds it to that), without that
    formatter's cost (about 55 µs a line here, a third of the gateway's CPU per
    request). Every value a client controls (method, path, client address) goes
    through the JSON encoder; request id and traceparent are validated, the rest
    is ours.
    """
    message = _dumps(f"{method} {path} {status}")
    error = f'"error":{{"code":{_dumps(error_code)}}},' if error_code is not None else ""
    labels = (
        f'"labels":{{"route":{_dumps(route)},"upstream":{_dumps(upstream)}}},'
        if upstream is not None
        else f'"labels":{{"route":{_dumps(route)}}},'
    )
    user = f',"user":{{"id":{_dumps(user_id)}}}' if user_id is not None else ""
    return (
        f'{{"@timestamp":"{_timestamp(time.time() if now is None else now)}","log.level":"info",'
        f'"message":{message},"client":{{"ip":{_dumps(client_ip)}}},"ecs.version":"{ECS_VERSION}",'
        f'{error}"event":{{"duration":{duration_ns}}},'
        f'"http":{{"request":{{"id":"{request_id}","method":{_dumps(method)}}},'
        f'"response":{{"body":{{"bytes":{sent}}},"status_code":{status}}}}},'
        f'{labels}"log":{{"logger":"gateway.access"}},"service":{{"name":"{SERVICE_NAME}"}},'
        f'"span":{{"id":"{traceparent[36:52]}"}},"trace":{{"id":"{traceparent[3:35]}"}},'
        f'"url":{{"path":{_dumps(path)}}}{user}}}'
    )


def write_access_line(line: str) -> None:
    """Straight to the batched handler when it is the one configured; else through logging."""
    handlers = access_logger.handlers
    if len(handlers) == 1 and isinstance(handlers[0], BatchedLineHandler):
        handlers[0].write_line(line)
    elif access_logger.isEnabledFor(logging.INFO):
        access_logger.info(line)


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
        has_origin = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"traceparent":
                traceparent = value
            elif name == b"origin":
                has_origin = True
        client = scope.get("client")
        span = span_token = None
        if _tracer is not None:
            span, span_token, own_traceparent = _start_server_span(scope, traceparent)
            traceparent = own_traceparent.encode()
        context = RequestContext(
            request_id=request_id.decode()
            if request_id is not None and SAFE_REQUEST_ID.match(request_id)
            else secrets.token_hex(16),
            traceparent=traceparent.decode()
            if traceparent is not None and TRACEPARENT.match(traceparent)
            else f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
            client_ip=client[0] if client else "unknown",
            has_origin=has_origin,
        )
        scope[SCOPE_KEY] = context
        request_id_token = current_request_id.set(context.request_id)
        traceparent_token = current_traceparent.set(context.traceparent)
        extra_headers = [*SECURITY_HEADERS, (b"x-request-id", context.request_id.encode())]
        if not has_origin:
            # The CORS layer is skipped without an Origin; caches must still key on it.
            extra_headers.append((b"vary", b"Origin"))
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
            logger.exception("unhandled error", extra={"url.path": scope["path"]})
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
            current_traceparent.reset(traceparent_token)
            current_request_id.reset(request_id_token)
            duration = time.perf_counter() - began
            self._observe(context.route, scope["method"], status, duration)
            if span is not None:
                _end_server_span(span, span_token, context.route, scope["method"], status)
            if self.access_log:
                write_access_line(
                    access_line(
                        request_id=context.request_id,
                        method=scope["method"],
                        path=scope["path"],
                        route=context.route,
                        upstream=context.upstream,
                        status=status,
                        duration_ns=int(duration * 1_000_000_000),
                        sent=sent,
                        client_ip=context.client_ip,
                        user_id=context.user_id,
                        error_code=context.error_code,
                        traceparent=context.traceparent,
                    )
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
