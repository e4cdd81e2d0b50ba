"""Event entry points of the order saga (choreography), run by `manage.py consume_events`.

Each handler reads its event, calls a service function and publishes the
answer through the outbox, all in the consumer's transaction (with the inbox
row), so a redelivered event changes nothing and publishes nothing twice. The
service functions also say whether the call changed anything, so a repeat
under another event id is a no-op too; so are `order.cancelled` and
`order.confirmed` for an order whose stock the orchestrator already released
or committed over HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from comptoir import ApplicationError
from comptoir.events import Envelope, event_handler

from .errors import CatalogErrorCode, StockRejectionReason
from .publishing import publish_stock_rejected, publish_stock_released, publish_stock_reserved
from .selectors import RequestedLine
from .services import reservation_commit_if_held, reservation_hold, reservation_release_if_held

logger = logging.getLogger(__name__)


# Refusals that mean "this order cannot have its stock": answered with stock.rejected.
REJECTING_CODES = frozenset(
    {
        CatalogErrorCode.INSUFFICIENT_STOCK,
        CatalogErrorCode.PRODUCT_NOT_FOUND,
        CatalogErrorCode.PRODUCT_INACTIVE,
        CatalogErrorCode.PRICE_CHANGED,
    }
)
# The order already has a reservation that this event cannot be applied to: logged, nothing else.
# ORDER_COMPENSATED: order.cancelled came first and left a tombstone (nothing is held).
STALE_CODES = frozenset(
    {
        CatalogErrorCode.RESERVATION_RELEASED,
        CatalogErrorCode.RESERVATION_MISMATCH,
        CatalogErrorCode.ORDER_COMPENSATED,
    }
)


def _requested(lines: Sequence[Mapping[str, Any]]) -> list[RequestedLine] | None:
    """The event's lines, one per product (repeated products summed), each held at
    the unit price the order was placed at; None if an id is not ours or a
    product is repeated at two prices."""
    quantities: dict[int, int] = {}
    prices: dict[int, Decimal] = {}
    for line in lines:
        product_id = str(line["product_id"])
        if not product_id.isdecimal():
            return None
        key, price = int(product_id), Decimal(str(line["unit_price"]))
        if prices.setdefault(key, price) != price:
            return None
        quantities[key] = quantities.get(key, 0) + int(line["quantity"])
    return [
        RequestedLine(product_id=product_id, quantity=quantity, unit_price=prices[product_id])
        for product_id, quantity in quantities.items()
    ]


def _all_unavailable(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"product_id": str(line["product_id"]), "requested": int(line["quantity"]), "available": 0}
        for line in lines
    ]


def _unavailable_from(error: ApplicationError, lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if error.code == CatalogErrorCode.INSUFFICIENT_STOCK:
        return [
            {
                "product_id": str(item["product_id"]),
                "requested": int(item["requested"]),
                "available": int(item["available"]),
            }
            for item in error.details["unavailable"]
        ]
    missing = {str(product_id) for product_id in error.details.get("product_ids", [])}
    return [item for item in _all_unavailable(lines) if item["product_id"] in missing]


@event_handler("order.created")
def reserve_stock_for_order(event: Envelope) -> None:
    """order.created → hold every line's stock → stock.reserved, or nothing held → stock.rejected."""
    order = event.payload
    order_id = str(order["order_id"])
    lines = _requested(order["lines"])
    if lines is None:
        publish_stock_rejected(order_id=order_id, unavailable=_all_unavailable(order["lines"]))
        return
    try:
        # reservation_hold is atomic, so here a savepoint of its own: a refusal
        # undoes the claim on the order id and any lock it took, while the
        # handler's transaction (inbox row, the rejection below) goes on.
        reservation, created = reservation_hold(
            order_id=order_id, lines=lines, currency=str(order["currency"])
        )
    except ApplicationError as error:
        if error.code in REJECTING_CODES:
            logger.info("stock refused for order %s: %s", order_id, error.code)
            if error.code == CatalogErrorCode.PRICE_CHANGED:
                publish_stock_rejected(
                    order_id=order_id, reason=StockRejectionReason.PRICE_CHANGED, unavailable=[]
                )
            else:
                publish_stock_rejected(
                    order_id=order_id, unavailable=_unavailable_from(error, order["lines"])
                )
            return
        if error.code in STALE_CODES:
            logger.warning("order.created for order %s ignored: %s", order_id, error.code)
            return
        raise
    if not created:
        logger.info("order.created for order %s: reservation %s already made", order_id, reservation.pk)
        return
    publish_stock_reserved(reservation=reservation, order=order)


@event_handler("order.cancelled")
def release_stock_of_cancelled_order(event: Envelope) -> None:
    """order.cancelled → give held stock back → stock.released; nothing held → nothing."""
    order_id = str(event.payload["order_id"])
    reservation = reservation_release_if_held(order_id=order_id)
    if reservation is None:
        logger.info("order.cancelled for order %s: no stock held", order_id)
        return
    publish_stock_released(reservation=reservation, reason=str(event.payload["reason"]))


@event_handler("order.confirmed")
def commit_stock_of_confirmed_order(event: Envelope) -> None:
    """order.confirmed → the held stock is sold; nothing held or already committed → nothing."""
    order_id = str(event.payload["order_id"])
    reservation_id = reservation_commit_if_held(order_id=order_id)
    if reservation_id is None:
        logger.info("order.confirmed for order %s: no held reservation to commit", order_id)
        return
    logger.info("order.confirmed for order %s: reservation %s committed", order_id, reservation_id)
