"""Metrics and trace context for the relay and the consumers.

Trace context travels in W3C `traceparent` form: `publish_event` stores the
current span's in the envelope and the outbox row's headers; the relay opens a
PRODUCER span as a child of it and sends *its own* context in the Kafka
`traceparent` header; a consumer opens a CONSUMER span as a child of the header
(else of the envelope's), so one trace runs from the HTTP request through the
relay to every handler, and events a handler publishes continue it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, Message, TopicPartition
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from comptoir import _metrics

from ._topics import dlq_topic

if TYPE_CHECKING:
    from ._consumer import EventConsumer
    from ._context import Delivery

LAG_REPORT_EVERY_S = 5.0
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
def producing(topic: str, key: str, envelope: str) -> Iterator[str | None]:
    """A PRODUCER span for one outbox row, child of the trace stored with it."""
    parent = _context_from(_envelope_traceparent(envelope))
    with _tracer.start_as_current_span(
        f"{topic} publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "publish",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": key,
        },
    ):
        yield current_traceparent()


def _envelope_traceparent(envelope: str) -> str | None:
    # Cheap: the envelope's traceparent field, without parsing the whole payload again.
    marker = '"traceparent":"'
    at = envelope.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    return envelope[start : start + 55]


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


def initialise(consumer: EventConsumer) -> None:
    """Creates the group's series at 0, so dashboards and alerts see them before the first failure."""
    service, group = consumer.config.service, consumer.group
    for topic in consumer.topics:
        for outcome in ("handled", "duplicate", "skipped", "failed"):
            _metrics.CONSUMED.labels(service, group, topic, outcome)
        _metrics.RETRIES.labels(service, group, topic)
        _metrics.DEAD_LETTERS.labels(service, group, topic)


def relay_started(service: str) -> None:
    _metrics.RELAY_FAILURES.labels(service)


def relayed(service: str, topics: list[str], failed: int) -> None:
    for topic in topics:
        _metrics.RELAYED.labels(service, topic).inc()
    if failed:
        _metrics.RELAY_FAILURES.labels(service).inc(failed)


def _topic_of(message: Message) -> str:
    return str(message.topic())


def consumed(consumer: EventConsumer, message: Message, outcome: str) -> None:
    if outcome == "deferred":
        return
    _metrics.CONSUMED.labels(consumer.config.service, consumer.group, _topic_of(message), outcome).inc()


def retried(consumer: EventConsumer, topic: str) -> None:
    _metrics.RETRIES.labels(consumer.config.service, consumer.group, topic).inc()


def dead_lettered(consumer: EventConsumer, topic: str) -> None:
    _metrics.DEAD_LETTERS.labels(consumer.config.service, consumer.group, topic).inc()


class LagReporter(threading.Thread):
    """Sets the lag of every assigned partition and the size of each DLQ the group
    feeds, off the consumer's loop.

    Those figures take a broker round trip per partition (watermarks, committed
    offsets); asked from the consuming thread they held every message behind them
    for up to a second. The consuming thread only hands over its assignment and
    positions (local to the client) every LAG_REPORT_EVERY_S with `offer()`; this
    thread asks the broker through a probe client of its own (same group id, never
    subscribed). The consuming client itself is never called from here: its calls
    can block while another thread is inside poll().
    """

    def __init__(self, owner: EventConsumer, probe: Consumer) -> None:
        super().__init__(name=f"lag-report {owner.group}", daemon=True)
        self.owner = owner
        self.probe = probe
        self._halt = threading.Event()
        self._offered = threading.Event()
        self._positions: list[TopicPartition] = []
        self._next_offer = 0.0

    def offer(self, consumer: Consumer) -> None:
        """From the consuming thread: hands over the positions when a report is due."""
        now = time.monotonic()
        if now < self._next_offer or self._offered.is_set():
            return
        self._next_offer = now + LAG_REPORT_EVERY_S
        assigned = consumer.assignment()
        self._positions = consumer.position(assigned) if assigned else []
        self._offered.set()

    def stop(self) -> None:
        self._halt.set()
        self._offered.set()
        self.join(timeout=5.0)
        self.probe.close()

    def run(self) -> None:
        while True:
            self._offered.wait()
            if self._halt.is_set():
                return
            report_lag(self.owner, self._positions, self.probe)
            self._offered.clear()


def report_lag(owner: EventConsumer, positions: list[TopicPartition], probe: Consumer) -> None:
    """Sets the lag of each of the group's `positions` and the size of each DLQ it feeds,
    asking the broker through `probe`."""
    service = owner.config.service
    try:
        # No message read from a partition since the assignment: no position yet, the
        # group's committed offset says where it stands (none at all: from the start).
        unread = [p for p in positions if p.offset < 0]
        stored = probe.committed(unread, timeout=2.0) if unread else []
        committed = {(p.topic, p.partition): p.offset for p in stored}
        for partition in positions:
            low, high = probe.get_watermark_offsets(partition, timeout=1.0, cached=False)
            position = partition.offset
            if position < 0:
                position = committed.get((partition.topic, partition.partition), -1)
            if position < 0:
                position = low
            _metrics.CONSUMER_LAG.labels(service, owner.group, partition.topic, str(partition.partition)).set(
                max(0, high - position)
            )
        for topic in owner.topics:
            _metrics.DLQ_MESSAGES.labels(service, owner.group, topic).set(
                _dlq_size(probe, dlq_topic(topic, owner.config.service))
            )
    except Exception as error:  # noqa: BLE001 - metrics never stop consumption
        _log_once(f"lag report failed: {type(error).__name__}: {error}")


def _dlq_size(consumer: Consumer, name: str) -> int:
    metadata = consumer.list_topics(name, timeout=2.0)
    found = metadata.topics.get(name)
    if found is None or found.error is not None:
        return 0
    total = 0
    for partition_id in found.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(name, partition_id), timeout=1.0)
        total += max(0, high - low)
    return total


_logged: dict[str, float] = {}


def _log_once(message: str, every_s: float = 60.0) -> None:
    import logging

    now = time.monotonic()
    if now - _logged.get(message, -every_s) >= every_s:
        _logged[message] = now
        logging.getLogger("comptoir.events.consumer").warning("consumer metrics: %s", message)


__all__: list[Any] = []
