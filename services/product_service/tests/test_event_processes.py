"""The real `consume_events` and `outbox_relay` processes of product_service against
the real broker: events in, stock held / refused / given back, events out."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from catalog.models import Product, ReservationStatus, StockReservation
from comptoir.events import InboxMessage, OutboxMessage
from comptoir.events.testing import ServiceProcesses, make_envelope, payloads_in, produce, wait_for

from .conftest import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def order_created(product: Product, quantity: int) -> dict[str, object]:
    return {
        "order_id": str(uuid.uuid4()),
        "user_id": "3",
        "lines": [{"product_id": str(product.pk), "quantity": quantity, "unit_price": "5.00"}],
        "amount": f"{5 * quantity}.00",
        "currency": "EUR",
    }


def status_of(order_id: str) -> str | None:
    return StockReservation.objects.filter(order_id=order_id).values_list("status", flat=True).first()


def test_consumer_process_reserves_refuses_and_releases_through_the_broker(
    processes: ServiceProcesses,
    event_topics: dict[str, str],
    make_product: ProductFactory,
    stock_of: Callable[[Product], int],
) -> None:
    cup = make_product(stock=3, price="5.00")  # the price the events' orders were placed at
    processes.start("outbox_relay")
    processes.start("consume_events", "--group-id", f"product_service.test-{uuid.uuid4().hex[:8]}")

    held = make_envelope("order.created", order_created(cup, 2))
    produce(event_topics["order.created"], held)
    produce(event_topics["order.created"], held)  # delivered twice
    wait_for(lambda: status_of(held.aggregate_id) == "RESERVED", timeout_s=60, what="the reservation")

    refused = make_envelope("order.created", order_created(cup, 2))
    produce(event_topics["order.created"], refused)
    wait_for(
        lambda: OutboxMessage.objects.filter(event_type="stock.rejected").exists(),
        timeout_s=30,
        what="the refusal",
    )
    produce(
        event_topics["order.cancelled"],
        make_envelope(
            "order.cancelled", {"order_id": held.aggregate_id, "user_id": "3", "reason": "insufficient_funds"}
        ),
    )
    wait_for(lambda: status_of(held.aggregate_id) == "RELEASED", timeout_s=30, what="the release")
    wait_for(
        lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists(),
        timeout_s=30,
        what="the relay to publish everything",
    )

    reservation = StockReservation.objects.get(order_id=held.aggregate_id)
    assert reservation.status == ReservationStatus.RELEASED
    assert stock_of(cup) == 3
    assert status_of(refused.aggregate_id) is None
    assert InboxMessage.objects.count() == 3  # the duplicate left no second row
    assert payloads_in(event_topics["stock.reserved"]) == [
        {
            "order_id": held.aggregate_id,
            "reservation_id": str(reservation.pk),
            "lines": [{"product_id": str(cup.pk), "quantity": 2}],
            "user_id": "3",
            "amount": "10.00",
            "currency": "EUR",
        }
    ]
    assert payloads_in(event_topics["stock.rejected"]) == [
        {
            "order_id": refused.aggregate_id,
            "reason": "insufficient_stock",
            "unavailable": [{"product_id": str(cup.pk), "requested": 2, "available": 1}],
        }
    ]
    assert payloads_in(event_topics["stock.released"]) == [
        {"order_id": held.aggregate_id, "reservation_id": str(reservation.pk), "reason": "insufficient_funds"}
    ]
