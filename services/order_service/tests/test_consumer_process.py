"""The choreography handlers run by a real `manage.py consume_events` process,
reading real Kafka topics (of this test's own) into the test database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from comptoir import kafka_client_config
from comptoir.events import Envelope, InboxMessage, declare_topics, event_settings
from orders.models import Order, OrderStatus

from .conftest import ALICE
from .processes import ProcessRunner
from .support import event_summary, timeline, wait_for
from .test_choreography import payment_succeeded, stock_rejected, stock_reserved

pytestmark = pytest.mark.django_db(transaction=True)

HANDLED = (
    "stock.reserved",
    "stock.rejected",
    "payment.succeeded",
    "payment.failed",
    "stock.released",
    "payment.refunded",
    "user.deactivated",
)


@pytest.fixture
def test_topics(settings: Any) -> dict[str, str]:
    """Every event type the consumer reads, on a topic of this test's own."""
    suffix = uuid.uuid4().hex[:10]
    topics = {event_type: f"test.order_service.{event_type}-{suffix}" for event_type in HANDLED}
    settings.COMPTOIR_EVENTS = {"TOPICS": topics, "RETRY_DELAYS": [0.5]}
    declare_topics(topics.values(), event_settings(), with_failure_topics=True)
    return topics


def _produce(topics: dict[str, str], events: list[Envelope]) -> None:
    """Publishes the events as another service's relay would."""
    producer = Producer({**kafka_client_config(), "log_level": 3})
    for event in events:
        headers: list[tuple[str, str | bytes | None]] = list(event.kafka_headers())
        producer.produce(
            topics[event.event_type], key=event.aggregate_id, value=event.to_json(), headers=headers
        )
    assert producer.flush(30) == 0


def test_a_real_consumer_confirms_and_cancels_once_each(
    processes: ProcessRunner,
    test_topics: dict[str, str],
    upstreams: Any,
    settings: Any,
    place_order: Callable[..., Any],
) -> None:
    settings.SAGA_MODE = "choreography"
    confirmed_id = place_order([(1, 2)]).json()["id"]
    rejected_id = place_order([(2, 1)]).json()["id"]
    consumer = processes.start(
        "manage.py",
        "consume_events",
        "--group-id",
        f"order_service.test-{uuid.uuid4().hex[:10]}",
        ORDER_SERVICE_TEST_TOPICS=json.dumps(test_topics),
    )
    paid = payment_succeeded(confirmed_id)

    _produce(test_topics, [stock_reserved(confirmed_id), paid, paid, stock_rejected(rejected_id)])

    def settled() -> bool:
        return set(
            Order.objects.filter(pk__in=[confirmed_id, rejected_id]).values_list("status", flat=True)
        ) == {
            OrderStatus.CONFIRMED,
            OrderStatus.CANCELLED,
        }

    wait_for(settled, timeout_s=60, what=f"both orders to settle\n{consumer.log.read_text()[-3000:]}")
    assert Order.objects.get(pk=confirmed_id).status == OrderStatus.CONFIRMED
    rejected = Order.objects.get(pk=rejected_id)
    assert (rejected.status, rejected.cancel_reason) == (OrderStatus.CANCELLED, "insufficient_stock")
    assert [step for step, _, _ in timeline(confirmed_id)] == [
        "verify_user",
        "reserve_stock",
        "charge_payment",
        "confirm_order",
    ]
    # The duplicate delivery of payment.succeeded was skipped by the inbox.
    wait_for(lambda: InboxMessage.objects.count() == 3, timeout_s=30, what="three handled events")
    assert sorted((e[0], e[1]) for e in event_summary()) == [
        ("order.cancelled", str(rejected_id)),
        ("order.confirmed", str(confirmed_id)),
        ("order.created", str(confirmed_id)),
        ("order.created", str(rejected_id)),
    ]
    confirmed_event = next(e for e in event_summary() if e[0] == "order.confirmed")
    assert confirmed_event[2] == {
        "order_id": str(confirmed_id),
        "user_id": str(ALICE),
        "amount": "25.00",
        "currency": "EUR",
        # The contact user_service gave when the order was placed, for the mail.
        "customer_email": f"user{ALICE}@comptoir.dev",
        "customer_name": f"User {ALICE}",
    }
    assert consumer.process.poll() is None
