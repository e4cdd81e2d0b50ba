"""The order's status machine and its saga timeline: the two writes every
saga step ends with, whichever mode drives it.

An order is placed PENDING and ends CONFIRMED or CANCELLED (with a reason
code); each move writes one `OrderStatusChange`. A timeline entry is written
at most once per (order, step, outcome), so repeating a step or handling an
event twice adds nothing.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from comptoir import ApplicationError, ConflictError, ErrorCode, NotFoundError

from . import saga_metrics
from .errors import OrderErrorCode
from .models import CancelReason, Order, OrderStatus, OrderStatusChange, SagaTimelineEntry
from .selectors import MAX_ORDER_ID

MAX_REASON_LENGTH = 64
MAX_TIMELINE_ERROR_LENGTH = 500

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


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
    _count_saga_outcome(order)
    return order


def _count_saga_outcome(order: Order) -> None:
    """Counts the finished saga once its final state is committed (a lost count is affordable)."""
    mode = order.saga_mode or "orchestration"
    status, reason = order.status, order.cancel_reason or ""
    duration_s = (timezone.now() - order.created_at).total_seconds()
    transaction.on_commit(
        lambda: saga_metrics.saga_finished(mode=mode, status=status, reason=reason, duration_s=duration_s)
    )


def timeline_record(*, order_id: int, step: str, status: str, error: str | None = None) -> None:
    """Adds `step` `status` to the order's timeline, unless it is there already."""
    timeline_record_many(order_id=order_id, steps=[step], status=status, error=error)


def timeline_record_many(*, order_id: int, steps: list[str], status: str, error: str | None = None) -> None:
    """Adds each of `steps` with `status` to the order's timeline (in that order,
    one statement), skipping those there already."""
    at = timezone.now()
    SagaTimelineEntry.objects.bulk_create(
        [
            SagaTimelineEntry(
                order_id=order_id,
                step=step,
                status=status,
                error=error[:MAX_TIMELINE_ERROR_LENGTH] if error else None,
                at=at,
            )
            for step in steps
        ],
        ignore_conflicts=True,
    )
