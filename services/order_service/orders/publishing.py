"""The events order_service publishes, shaped as `contracts/events/` says.

Each function writes to the outbox inside the caller's transaction (the one
that changes the order), so the event exists exactly when the change commits.
Ids travel as strings, money as decimal strings; the saga id is the order id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from comptoir.events import Envelope, publish_event

from .models import Customer, Order, OrderLine


def publish_order_created(*, order: Order, lines: Sequence[OrderLine]) -> Envelope:
    """Starts the choreography: product_service reserves on it. `lines`: the
    order's lines, as the placing transaction wrote them."""
    return _publish(
        "order.created",
        order,
        {
            "order_id": str(order.pk),
            "user_id": str(order.user_id),
            "lines": [
                {"product_id": str(line.product_id), "quantity": line.quantity, "unit_price": line.unit_price}
                for line in lines
            ],
            "amount": order.total,
            "currency": order.currency,
        },
    )


def publish_order_confirmed(*, order: Order, customer: Customer | None = None) -> Envelope:
    """`customer`: the contact the saga got from user_service, for the mail."""
    payload: dict[str, Any] = {
        "order_id": str(order.pk),
        "user_id": str(order.user_id),
        "amount": order.total,
        "currency": order.currency,
    }
    return _publish("order.confirmed", order, {**payload, **_contact(customer)})


def publish_order_cancelled(
    *,
    order: Order,
    reservation_id: str | None = None,
    payment_id: str | None = None,
    customer: Customer | None = None,
) -> Envelope:
    """`reason` is the order's cancel reason code (user_inactive, insufficient_stock...)."""
    payload: dict[str, Any] = {
        "order_id": str(order.pk),
        "user_id": str(order.user_id),
        "reason": order.cancel_reason,
    }
    if reservation_id:
        payload["reservation_id"] = reservation_id
    if payment_id:
        payload["payment_id"] = payment_id
    return _publish("order.cancelled", order, {**payload, **_contact(customer)})


def _contact(customer: Customer | None) -> dict[str, str]:
    """The optional `customer_email` / `customer_name` of the mailed events."""
    if customer is None:
        return {}
    return {"customer_email": customer.email, "customer_name": customer.full_name}


def _publish(event_type: str, order: Order, payload: dict[str, Any]) -> Envelope:
    return publish_event(event_type, aggregate_id=order.pk, payload=payload, saga_id=f"order-{order.pk}")
