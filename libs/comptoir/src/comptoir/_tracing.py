"""OpenTelemetry tracing, configured once per process by the chassis app's `ready()`.

A TracerProvider named after the service (`service.name`, or `OTEL_SERVICE_NAME`)
always exists, so every log line can carry `trace.id`/`span.id`; spans leave the
process only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) names
a collector, batched, over the protocol `OTEL_EXPORTER_OTLP_PROTOCOL` (or
`..._TRACES_PROTOCOL`) names: `http/protobuf` (the default, port 4318) or `grpc`
(port 4317); the exporters read the other standard `OTEL_EXPORTER_OTLP_*`
variables (headers, timeout, compression, certificates) themselves.
`OTEL_SDK_DISABLED=true` turns it all off.

Sampled at the head by default: a trace that starts here is kept with probability
COMPTOIR_TRACE_SAMPLE_RATIO (default 0.1), and every process follows the decision
of the caller's traceparent, so a trace is whole or absent. The standard
`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` replace that when set (e.g.
`parentbased_always_on` to keep everything). Unsampled requests still carry trace
ids into their logs and error bodies.

Instrumented: incoming Django requests, calls to other services (the ServiceClient
makes their CLIENT spans itself, `comptoir._http`),
Celery publish and run, and Kafka through the outbox, the relay and the consumer
(`comptoir.events._tracing`). SQL statements get a CLIENT span each only with
COMPTOIR_TRACE_SQL=true: one span per statement is most of a trace's volume.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

logger = logging.getLogger("comptoir.tracing")

_lock = threading.Lock()
_configured = False
_db_tracer = trace.get_tracer("comptoir.db")


def _process_kind() -> str:
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program == "gunicorn":
        return "web"
    if program == "celery":
        return "beat" if "beat" in sys.argv[1:] else "worker"
    for command in ("outbox_relay", "consume_events", "runserver"):
        if command in sys.argv[1:2]:
            return {"outbox_relay": "relay", "consume_events": "consumer", "runserver": "web"}[command]
    return "other"


def exporting() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


PROTOCOLS = ("http/protobuf", "grpc")


class UnsupportedProtocolError(ValueError):
    """OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL names a protocol the chassis cannot export with."""


def otlp_protocol() -> str:
    """The OTLP protocol of the traces, from the standard variables (the specific one first)."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(name, "").strip().lower()
        if value:
            if value not in PROTOCOLS:
                raise UnsupportedProtocolError(
                    f"{name}={value!r}: traces are exported over {' or '.join(PROTOCOLS)}"
                )
            return value
    return "http/protobuf"


def otlp_span_exporter() -> SpanExporter:
    """The OTLP exporter of `otlp_protocol()`, configured by the standard variables."""
    if otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


class PerProcessExporter(SpanExporter):
    """Builds the real exporter in the process that exports, on its first batch.

    Celery's prefork pool forks after the chassis configured tracing: a gRPC channel
    created before a fork is not usable in the child, and the parent never exports.
    """

    def __init__(self, factory: Callable[[], SpanExporter]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = -1
        self._exporter: SpanExporter | None = None

    def _current(self) -> SpanExporter:
        with self._lock:
            if self._exporter is None or self._pid != os.getpid():
                self._exporter, self._pid = self._factory(), os.getpid()
            return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._current().export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        exporter = self._exporter
        return exporter.force_flush(timeout_millis) if exporter and self._pid == os.getpid() else True

    def shutdown(self) -> None:
        exporter = self._exporter
        if exporter is not None and self._pid == os.getpid():
            exporter.shutdown()


DEFAULT_SAMPLE_RATIO = 0.1


def sampler() -> Sampler | None:
    """Parent-based ratio sampling; None leaves it to the standard OTEL_TRACES_SAMPLER."""
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    ratio = float(os.environ.get("COMPTOIR_TRACE_SAMPLE_RATIO", DEFAULT_SAMPLE_RATIO))
    return ParentBased(TraceIdRatioBased(ratio))


def tracing_sql() -> bool:
    """True when every SQL statement gets a span of its own (COMPTOIR_TRACE_SQL)."""
    return os.environ.get("COMPTOIR_TRACE_SQL", "").lower() in {"1", "true", "yes"}


def configure_tracing(service: str) -> bool:
    """Sets this process's TracerProvider and instruments the libraries (once); True if done now."""
    global _configured
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    with _lock:
        if _configured:
            return False
        _configured = True
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or service,
            "service.namespace": "comptoir",
            "comptoir.process": _process_kind(),
        }
    )
    provider = TracerProvider(resource=resource, sampler=sampler())
    if exporting():
        otlp_protocol()  # a protocol the chassis cannot speak stops the process here, named
        provider.add_span_processor(
            BatchSpanProcessor(PerProcessExporter(otlp_span_exporter), schedule_delay_millis=500)
        )
    trace.set_tracer_provider(provider)
    _instrument_libraries()
    return True


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    celery = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    # Calls between services make their client spans themselves (comptoir._http).
    for instrumentor in (DjangoInstrumentor(), celery):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    if tracing_sql():
        _instrument_raw_psycopg()


def _instrument_raw_psycopg() -> None:
    """Connections opened with psycopg directly (e.g. the relay's LISTEN) are traced by
    the psycopg instrumentation; Django's own connections set their own cursor
    factory, so their statements are traced by `trace_queries` instead."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    instrumentor = PsycopgInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(skip_dep_check=True)


def trace_queries(alias: str) -> Callable[..., Any]:
    """A Django execute wrapper: one CLIENT span per SQL statement (when a trace is active)."""

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not trace.get_current_span().get_span_context().is_valid:
            return execute(sql, params, many, context)  # no trace to attach to: no orphan spans
        operation = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "SQL"
        with _db_tracer.start_as_current_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.system": "postgresql",
                "db.namespace": str(context["connection"].settings_dict.get("NAME", "")),
                "db.operation.name": operation,
                "db.query.text": sql[:2000],
                "comptoir.db.alias": alias,
            },
        ) as span:
            try:
                return execute(sql, params, many, context)
            except Exception as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise

    return wrapper


def current_ids() -> tuple[str | None, str | None]:
    """(trace id, span id) of the current span in hex, or (None, None)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def shutdown() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
