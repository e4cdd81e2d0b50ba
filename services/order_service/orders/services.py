"""Writes on orders: placing one, and moving its status.

The status machine is small on purpose: an order is placed PENDING and ends
CONFIRMED or CANCELLED (with a reason code). The saga that decides which is
built later and calls `order_transition`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from comptoir import ApplicationError, ConflictError, ErrorCode, NotFoundError

from .errors import OrderErrorCode
from .models import CancelReason, Order, OrderLine, OrderStatus, OrderStatusChange
from .product_quotes import Quote, RequestedLine, product_quote
from .selectors import MAX_ORDER_ID, order_get_by_idempotency_key

MAX_LINES = 50
MAX_QUANTITY = 100
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_REASON_LENGTH = 64
# What Order.total (12 digits, 2 decimals) can hold.
MAX_ORDER_TOTAL = Decimal("9999999999.99")

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    # False when an earlier request with the same idempotency key placed it.
    created: bool


def order_create(
    *, user_id: int, lines: Sequence[RequestedLine], idempotency_key: str | None = None
) -> PlacedOrder:
    """Places a PENDING order priced by product_service.

    Not one transaction from end to end on purpose: the quote is an HTTP call,
    and no row lock or transaction is held while it runs. A retried request
    (same user, same idempotency key) gets the order the first one placed; two
    racing first requests are settled by the unique constraint on
    (user_id, idempotency_key): the loser reads the winner's order.
    """
    _reject_duplicate_products(lines)
    fingerprint = None
    if idempotency_key is not None:
        fingerprint = _lines_fingerprint(lines)
        earlier = order_get_by_idempotency_key(user_id=user_id, idempotency_key=idempotency_key)
        if earlier is not None:
            return _replayed(earlier, fingerprint)
    quote = product_quote(lines=lines)
    if quote.total > MAX_ORDER_TOTAL:
        raise ApplicationError(
            OrderErrorCode.ORDER_TOTAL_TOO_LARGE,
            f"An order's total cannot exceed {MAX_ORDER_TOTAL} {quote.currency}.",
            details={"total": str(quote.total), "currency": quote.currency},
        )
    try:
        order = _order_insert(
            user_id=user_id, quote=quote, idempotency_key=idempotency_key, fingerprint=fingerprint
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        earlier = order_get_by_idempotency_key(user_id=user_id, idempotency_key=idempotency_key)
        if earlier is None:
            raise
        return _replayed(earlier, fingerprint)
    return PlacedOrder(order=order, created=True)


@transaction.atomic
def order_transition(*, order_id: int, to_status: str, reason: str | None = None) -> Order:
    """Moves an order PENDING → CONFIRMED | CANCELLED and records the move.

    A cancellation needs a `CancelReason` code. Any other move, including a
    repeat of one already made, is refused with `invalid_status_transition`
    and its details name the current status, so a retrying caller can tell
    "already done" from "wrong".
    """
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"A reason is at most {MAX_REASON_LENGTH} characters."
        )
    try:
        if not 0 < order_id <= MAX_ORDER_ID:
            raise Order.DoesNotExist
        order = Order.objects.select_for_update().get(pk=order_id)
    except Order.DoesNotExist:
        raise NotFoundError(OrderErrorCode.ORDER_NOT_FOUND, "No such order.") from None
    from_status = order.status
    if to_status not in ALLOWED_TRANSITIONS.get(from_status, frozenset()):
        raise ConflictError(
            OrderErrorCode.INVALID_STATUS_TRANSITION,
            f"An order in status {from_status} cannot move to {to_status}.",
            details={"order_id": order.pk, "from_status": from_status, "to_status": to_status},
        )
    if to_status == OrderStatus.CANCELLED:
        if reason not in CancelReason.values:
            raise ApplicationError(
                OrderErrorCode.INVALID_CANCEL_REASON,
                "A cancellation needs a known reason code.",
                details={"reason": reason, "allowed": list(CancelReason.values)},
            )
        order.cancel_reason = reason
    order.status = to_status
    order.save(update_fields=["status", "cancel_reason", "updated_at"])
    OrderStatusChange.objects.create(order=order, from_status=from_status, to_status=to_status, reason=reason)
    return order


@transaction.atomic
def _order_insert(
    *, user_id: int, quote: Quote, idempotency_key: str | None, fingerprint: str | None
) -> Order:
    order = Order.objects.create(
        user_id=user_id,
        status=OrderStatus.PENDING,
        total=quote.total,
        currency=quote.currency,
        idempotency_key=idempotency_key,
        idempotency_fingerprint=fingerprint,
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product_id=line.product_id,
            product_name=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
            line_total=line.line_total,
        )
        for line in quote.lines
    )
    OrderStatusChange.objects.create(order=order, from_status=None, to_status=OrderStatus.PENDING)
    return order


def _reject_duplicate_products(lines: Sequence[RequestedLine]) -> None:
    """One line per product: a repeated product id is refused, not merged.

    Merging would silently turn two lines the client sent into one it did not,
    and could push the merged quantity past the per-line limit; refusing says
    exactly what is wrong.
    """
    seen: set[int] = set()
    repeated: list[int] = []
    for line in lines:
        if line.product_id in seen and line.product_id not in repeated:
            repeated.append(line.product_id)
        seen.add(line.product_id)
    if repeated:
        raise ApplicationError(
            OrderErrorCode.DUPLICATE_PRODUCT,
            "Each product may appear on one line only; put the whole quantity on that line.",
            details={"product_ids": repeated},
        )


def _lines_fingerprint(lines: Sequence[RequestedLine]) -> str:
    """The same lines in any order give the same fingerprint."""
    canonical = json.dumps(sorted([line.product_id, line.quantity] for line in lines))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replayed(order: Order, fingerprint: str | None) -> PlacedOrder:
    if order.idempotency_fingerprint != fingerprint:
        raise ConflictError(
            OrderErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was already used for a different order.",
            details={"order_id": order.pk},
        )
    return PlacedOrder(order=order, created=False)
