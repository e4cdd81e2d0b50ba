"""The events product_service publishes, shaped as `contracts/events/` says.

Each function writes to the outbox inside the caller's transaction (the
consumer's, with its inbox row), so the event exists exactly when the change
commits. Ids travel as strings, money as decimal strings; the aggregate is the
order the stock is held for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from comptoir.events import Envelope, publish_event

from .errors import StockRejectionReason
from .models import StockReservation


def publish_stock_reserved(*, reservation: StockReservation, order: Mapping[str, Any]) -> Envelope:
    """Every line is held; `order` is the `order.created` payload (user and amount travel on)."""
    return publish_event(
        "stock.reserved",
        aggregate_id=reservation.order_id,
        payload={
            "order_id": reservation.order_id,
            "reservation_id": str(reservation.pk),
            "lines": [
                {"product_id": str(line.product_id), "quantity": line.quantity}
                for line in reservation.line_list
            ],
            "user_id": str(order["user_id"]),
            "amount": str(order["amount"]),
            "currency": str(order["currency"]),
        },
    )


def publish_stock_rejected(
    *,
    order_id: str,
    unavailable: list[dict[str, Any]],
    reason: StockRejectionReason = StockRejectionReason.INSUFFICIENT_STOCK,
) -> Envelope:
    """Nothing is held; `unavailable` lists each refused line (product_id, requested,
    available); `reason` is `price_changed` when the order's prices are no longer the catalogue's."""
    return publish_event(
        "stock.rejected",
        aggregate_id=order_id,
        payload={"order_id": order_id, "reason": reason.value, "unavailable": unavailable},
    )


def publish_stock_released(*, reservation: StockReservation, reason: str) -> Envelope:
    """The held stock is back on sale; `reason` is the order's cancel reason."""
    return publish_event(
        "stock.released",
        aggregate_id=reservation.order_id,
        payload={"order_id": reservation.order_id, "reservation_id": str(reservation.pk), "reason": reason},
    )
