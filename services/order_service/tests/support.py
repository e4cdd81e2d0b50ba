"""Helpers the saga tests share: the outbox as checked envelopes, timelines, polling."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from comptoir.events import Envelope, OutboxMessage, topic_for, validate_payload
from orders.models import Order


def outbox_events() -> list[Envelope]:
    """Every event order_service wrote to its outbox, oldest first, each checked
    against its contract, topic and key as the relay will publish it."""
    envelopes = []
    for row in OutboxMessage.objects.order_by("id"):
        envelope = Envelope.from_json(row.envelope)
        validate_payload(envelope.event_type, envelope.schema_version, envelope.payload)
        assert (row.event_type, row.topic, row.key) == (
            envelope.event_type,
            topic_for(envelope.event_type),
            envelope.aggregate_id,
        )
        assert envelope.producer == "order_service"
        assert envelope.saga_id == f"order-{envelope.aggregate_id}"
        envelopes.append(envelope)
    return envelopes


def event_summary() -> list[tuple[str, str, dict[str, object]]]:
    """(event type, aggregate id, payload) of every outbox event."""
    return [(e.event_type, e.aggregate_id, e.payload) for e in outbox_events()]


def timeline(order: Order | int) -> list[tuple[str, str, str | None]]:
    """The order's saga timeline as (step, status, error)."""
    order_id = order if isinstance(order, int) else order.pk
    return [
        (entry.step, entry.status, entry.error)
        for entry in Order.objects.get(pk=order_id).timeline.order_by("at", "id")
    ]


def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Polls `check` until it holds; fails naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
