"""The order's status machine and its saga timeline: the two writes every
saga step ends with, whichever mode drives it.

An order is placed PENDING and ends CONFIRMED or CANCELLED (with a reason
code); each move writes one `OrderStatusChange`. A timeline entry is written
at most once per (order, step, outcome), so repeating a step or handling an
event twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from comptoir import ApplicationError, ConflictError, ErrorCode, NotFoundError

from . import saga_metrics
from .errors import OrderErrorCode
from .models import (
    CancelReason,
    Customer,
    Order,
    OrderStatus,
    OrderStatusChange,
    SagaTimelineEntry,
    TimelineStatus,
)
from .selectors import MAX_ORDER_ID

MAX_REASON_LENGTH = 64
MAX_TIMELINE_ERROR_LENGTH = 500

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


def order_transition(
    *,
    order_id: int,
    to_status: str,
    reason: str | None = None,
    known: Order | None = None,
    savepoint: bool = True,
) -> Order:
    """Moves an order PENDING → CONFIRMED | CANCELLED and records the move.

    A cancellation needs a `CancelReason` code. Any other move, including a
    repeat of one already made, is refused with `invalid_status_transition`
    and its details name the current status, so a retrying caller can tell
    "already done" from "wrong".

    `known`: the caller's copy of the order, read earlier without a lock (the
    saga's claim). The move is then one conditional UPDATE instead of a locking
    read and a write, and the copy (its customer, amount, mode and creation
    never change) is what is returned; a copy whose order has moved on meanwhile
    gets the same refusal as without one.

    `savepoint`: called inside a transaction, a refusal rolls back only this
    move (a savepoint, two statements). False for the sagas, which never catch
    a refusal here: it ends their transaction (a step's, the consumer's batch).
    """
    with transaction.atomic(savepoint=savepoint):
        return _transition(order_id=order_id, to_status=to_status, reason=reason, known=known)


def _transition(*, order_id: int, to_status: str, reason: str | None, known: Order | None) -> Order:
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"A reason is at most {MAX_REASON_LENGTH} characters."
        )
    if known is not None and known.pk == order_id and _moved_from_pending(known, to_status, reason):
        return _recorded(known, OrderStatus.PENDING, reason)
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
    return _recorded(order, from_status, reason)


def _moved_from_pending(order: Order, to_status: str, reason: str | None) -> bool:
    """`order` (the caller's copy) moved PENDING → `to_status` by one conditional
    UPDATE; False if the stored order was not PENDING or the move is not one to
    make (nothing written: the locking path then says why)."""
    if to_status not in ALLOWED_TRANSITIONS[OrderStatus.PENDING]:
        return False
    if to_status == OrderStatus.CANCELLED and reason not in CancelReason.values:
        return False
    now = timezone.now()
    fields: dict[str, object] = {"status": to_status, "updated_at": now}
    if to_status == OrderStatus.CANCELLED:
        fields["cancel_reason"] = reason
    if not Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(**fields):
        return False
    for name, value in fields.items():
        setattr(order, name, value)
    return True


def _recorded(order: Order, from_status: str, reason: str | None) -> Order:
    """Writes the move's `OrderStatusChange` and counts the finished saga."""
    OrderStatusChange.objects.create(
        order=order, from_status=from_status, to_status=order.status, reason=reason
    )
    count_saga_outcome(order)
    return order


def count_saga_outcome(order: Order) -> None:
    """Counts the finished saga once its final state is committed (a lost count is affordable)."""
    mode = order.saga_mode or "orchestration"
    status, reason = order.status, order.cancel_reason or ""
    duration_s = (timezone.now() - order.created_at).total_seconds()
    transaction.on_commit(
        lambda: saga_metrics.saga_finished(mode=mode, status=status, reason=reason, duration_s=duration_s)
    )


@dataclass(frozen=True)
class SagaOpening:
    """How a mode's saga starts: its row's first state, written with the order by
    the placing statement (`orders.services`), and the timeline entry of the user
    check its start made, if any."""

    current_step: str | None
    failure_reason: str | None = None
    # The contact the user check returned (carried by the order's later events).
    customer: Customer | None = None
    # When the saga counts as stalled; None: at once (nothing sweeps it).
    stall_deadline: datetime | None = None
    # The user check's outcome on the timeline (a TimelineStatus), None: no entry.
    user_check: str | None = None
    user_check_error: str | None = None


def timeline_record(
    *, order_id: int, step: str, status: str, error: str | None = None
) -> list[SagaTimelineEntry]:
    """Adds `step` `status` to the order's timeline, unless it is there already;
    returns the entry (see `timeline_record_many`)."""
    return timeline_record_many(order_id=order_id, steps=[step], status=status, error=error)


def timeline_record_many(
    *, order_id: int, steps: list[str], status: str, error: str | None = None
) -> list[SagaTimelineEntry]:
    """Adds each of `steps` with `status` to the order's timeline (in that order,
    one statement), skipping those there already. Returns the entries as built
    (without ids; one that was there already is among them, not stored again)."""
    at = timezone.now()
    return SagaTimelineEntry.objects.bulk_create(
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


_ORDER_TABLE, _HISTORY_TABLE = Order._meta.db_table, OrderStatusChange._meta.db_table
_TIMELINE_TABLE = SagaTimelineEntry._meta.db_table


def confirming_ctes(returning: str) -> str:
    """The part of a confirming statement (either saga's) after a CTE named `saga`
    that updated the order's saga row (RETURNING its order_id): `moved`, the order
    PENDING → CONFIRMED (RETURNING `returning`, its columns as `o.…`, `o.id`
    first), its history row, and the steps on the timeline in the order given
    (those there already skipped). Its parameters: `confirming_params`."""
    return (
        f"moved AS (UPDATE {_ORDER_TABLE} o SET status = %s, updated_at = %s FROM saga "  # noqa: S608
        f"WHERE o.id = saga.order_id AND o.status = %s RETURNING {returning}), "
        f"history AS (INSERT INTO {_HISTORY_TABLE} (order_id, from_status, to_status, reason, at) "
        "SELECT id, %s, %s, NULL, %s FROM moved), "
        f"entry AS (INSERT INTO {_TIMELINE_TABLE} (order_id, step, status, error, at) "
        "SELECT saga.order_id, step.name, %s, NULL, %s FROM saga, "
        "unnest(%s::varchar[]) WITH ORDINALITY AS step(name, rank) ORDER BY step.rank "
        "ON CONFLICT DO NOTHING) "
    )


def confirming_params(*, now: datetime, steps: Sequence[str]) -> list[Any]:
    """The parameters of `confirming_ctes`, in their order."""
    return [
        OrderStatus.CONFIRMED,
        now,
        OrderStatus.PENDING,
        OrderStatus.PENDING,
        OrderStatus.CONFIRMED,
        now,
        TimelineStatus.SUCCEEDED,
        now,
        [str(step) for step in steps],
    ]
