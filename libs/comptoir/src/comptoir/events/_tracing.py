"""Trace context for the relay and the consumers.

Trace context travels in W3C `traceparent` form: `publish_event` stores the
current span's in the envelope and in the outbox row's headers; the relay opens a
PRODUCER span as a child of the row's and sends *its own* context in the Kafka
`traceparent` header; a consumer opens a CONSUMER span as a child of the header
(else of the envelope's), so one trace runs from the HTTP request through the
relay to every handler, and events a handler publishes continue it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._context import Delivery

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("comptoir.events")


def current_traceparent() -> str | None:
    """The current span's context as a W3C traceparent, or None without a valid span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def _context_from(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return _propagator.extract({"traceparent": traceparent})


@contextmanager
def producing(topic: str, key: str, parent_traceparent: str | None) -> Iterator[str | None]:
    """A PRODUCER span for one outbox row, child of the trace stored in the row's headers;
    yields the span's own traceparent, for the Kafka message."""
    with _tracer.start_as_current_span(
        f"{topic} publish",
        context=_context_from(parent_traceparent),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "publish",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": key,
        },
    ):
        yield current_traceparent()


@contextmanager
def handling(group: str, delivery: Delivery, headers: Mapping[str, str]) -> Iterator[None]:
    """A CONSUMER span around one handler run, continuing the producer's trace."""
    parent = _context_from(headers.get("traceparent") or delivery.event.traceparent)
    event = delivery.event
    with _tracer.start_as_current_span(
        f"{delivery.topic} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": delivery.topic,
            "messaging.consumer.group.name": group,
            "messaging.destination.partition.id": str(delivery.partition),
            "messaging.kafka.offset": delivery.offset,
            "messaging.message.id": str(event.event_id),
            "comptoir.event_type": event.event_type,
            "comptoir.attempt": delivery.attempt,
        },
    ) as span:
        try:
            yield
        except Exception as error:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
