"""The choreographed order saga: no coordinator, order_service reacts to events.

Placing an order verifies the user synchronously, then in the order's own
transaction either publishes `order.created` (product_service reserves on it,
payment_service charges on `stock.reserved`) or, for an unknown or inactive
user, cancels at once and publishes `order.cancelled`. From then on:

- `stock.reserved` → timeline only (the payment decides);
- `stock.rejected` → CANCELLED insufficient_stock (price_changed when that is its reason) + `order.cancelled`;
- `payment.failed` → CANCELLED insufficient_funds (or payment_failed) + `order.cancelled`;
- `payment.succeeded` → CONFIRMED + `order.confirmed`;
- `stock.released`, `payment.refunded` → timeline only (the compensations the
  other services made on `order.cancelled`).

Each function runs in the consumer's transaction, with the inbox row: a
redelivered event is skipped there. An event about an order that is already
CONFIRMED or CANCELLED, or that another mode settles, changes nothing.

The deadline: nobody drives a choreographed order, so an event parked in a
dead-letter topic (or lost to a bug) would leave it PENDING with its stock
held. Celery beat runs `saga_expire_overdue` every SAGA_SWEEP_INTERVAL_S: an
order still PENDING CHOREOGRAPHY_DEADLINE_S after it was placed is cancelled
(system_error) with `order.cancelled`, on which payment_service refunds a
captured charge and product_service releases held stock; with nothing there
they leave a tombstone, so an event that arrives later takes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from comptoir import ConflictError

from .customers import customer_verify
from .errors import OrderErrorCode
from .models import (
    CancelReason,
    Customer,
    Order,
    OrderLine,
    OrderSaga,
    OrderStatus,
    SagaMode,
    SagaStatus,
    SagaStep,
    SagaTimelineEntry,
    TimelineStatus,
    as_stored,
)
from .publishing import publish_order_cancelled, publish_order_confirmed, publish_order_created
from .transitions import (
    SagaOpening,
    confirming_ctes,
    confirming_params,
    count_saga_outcome,
    order_transition,
    timeline_record,
)
from .upstream import STOCK_REFUSALS, StepRefused

logger = logging.getLogger(__name__)

PAYMENT_REFUSALS = {CancelReason.INSUFFICIENT_FUNDS.value: CancelReason.INSUFFICIENT_FUNDS}
EXPIRE_BATCH = 500
DEADLINE_ERROR = "deadline passed"


def user_can_order(*, user_id: int) -> Customer | None:
    """The user's contact if user_service says the user exists and is active;
    None if not (an outage raises UpstreamError)."""
    try:
        return customer_verify(user_id=user_id)
    except StepRefused:
        return None


def saga_opening(*, customer: Customer | None) -> SagaOpening:
    """The saga of an order being placed, after the user check made beside its
    quote: waiting on the stock (with the customer's contact), or failed when the
    user cannot order (`customer` None); the check's outcome on the timeline."""
    if customer is None:
        return SagaOpening(
            current_step=None,
            failure_reason=CancelReason.USER_INACTIVE,
            user_check=TimelineStatus.FAILED,
            user_check_error=CancelReason.USER_INACTIVE,
        )
    return SagaOpening(
        current_step=SagaStep.RESERVE_STOCK, customer=customer, user_check=TimelineStatus.SUCCEEDED
    )


def saga_start(*, saga: OrderSaga, lines: Sequence[OrderLine]) -> None:
    """In the placing transaction, once its statement wrote the order and `saga`
    (`saga_opening`): `order.created` (with the `lines` it wrote), or the
    cancellation of an order whose user cannot order."""
    if saga.failure_reason is None:
        publish_order_created(order=saga.order, lines=lines)
        return
    _cancel(saga, CancelReason.USER_INACTIVE)


_SAGA_TABLE, _ORDER_TABLE = OrderSaga._meta.db_table, Order._meta.db_table
_TIMELINE_TABLE = SagaTimelineEntry._meta.db_table
_RESERVED = (
    f"WITH saga AS (UPDATE {_SAGA_TABLE} s SET reservation_id = %s, "  # noqa: S608 - the models' own tables
    "current_step = CASE WHEN s.current_step = %s THEN %s ELSE s.current_step END, updated_at = %s "
    f"FROM {_ORDER_TABLE} o WHERE s.order_id = %s AND s.status = %s "
    "AND o.id = s.order_id AND o.saga_mode = %s AND o.status = %s RETURNING s.order_id), "
    f"entry AS (INSERT INTO {_TIMELINE_TABLE} (order_id, step, status, error, at) "
    "SELECT order_id, %s, %s, NULL, %s FROM saga ON CONFLICT DO NOTHING) "
    "SELECT count(*) FROM saga"
)


# The event functions below run in the consumer's batch transaction, called by
# the handlers without catching: an error fails the handler and the consumer
# replays the batch event by event. A savepoint of their own there would be two
# statements for nothing; called alone, each is its own transaction.
def stock_reserved(*, order_id: str, reservation_id: str) -> None:
    """The reservation on the saga and the step's success on the timeline, in one
    statement (the locking read, the timeline's INSERT and the saga's UPDATE were
    three). The saga's row lock serialises it with the other events of the
    order, whose handlers lock that row first: a choreographed saga is RUNNING
    exactly while its order is PENDING (both move in one transaction), so the
    UPDATE's condition on the saga's status, checked again once the lock is
    granted, is the order's. Nothing is written for a settled, orchestrated or
    unknown order."""
    if not order_id.isdigit():
        logger.warning("event for an order id this service never issued", extra={"order_id": order_id})
        return
    now = timezone.now()
    params: list[Any] = [
        reservation_id,
        SagaStep.RESERVE_STOCK,
        SagaStep.CHARGE_PAYMENT,
        now,
        int(order_id),
        SagaStatus.RUNNING,
        SagaMode.CHOREOGRAPHY,
        OrderStatus.PENDING,
        SagaStep.RESERVE_STOCK,
        TimelineStatus.SUCCEEDED,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_RESERVED, params)
        row = cursor.fetchone()
    if (row is None or row[0] == 0) and not OrderSaga.objects.filter(pk=int(order_id)).exists():
        logger.warning("event for an unknown order", extra={"order_id": order_id})


@transaction.atomic(savepoint=False)
def stock_rejected(*, order_id: str, reason: str) -> None:
    saga = _active_saga(order_id)
    if saga is None:
        return
    cancel_reason = STOCK_REFUSALS.get(reason, CancelReason.INSUFFICIENT_STOCK)
    timeline_record(
        order_id=saga.order_id,
        step=SagaStep.RESERVE_STOCK,
        status=TimelineStatus.FAILED,
        error=cancel_reason,
    )
    logger.info("stock rejected", extra={"order_id": saga.order_id, "reason": reason})
    _cancel(saga, cancel_reason)


_CONFIRMED = (
    f"WITH saga AS (UPDATE {_SAGA_TABLE} s SET payment_id = %s, status = %s, current_step = NULL, "  # noqa: S608
    f"updated_at = %s FROM {_ORDER_TABLE} o WHERE s.order_id = %s AND s.status = %s "
    "AND o.id = s.order_id AND o.saga_mode = %s AND o.status = %s "
    "RETURNING s.order_id, s.customer_email, s.customer_name), "
    + confirming_ctes("o.id, o.user_id, o.total, o.currency, o.saga_mode, o.created_at")
    + "SELECT saga.order_id, saga.customer_email, saga.customer_name, "
    "moved.id, moved.user_id, moved.total, moved.currency, moved.saga_mode, moved.created_at "
    "FROM saga LEFT JOIN moved ON moved.id = saga.order_id"
)
# A charge means the stock was reserved, even if that event is still on its way.
_CONFIRMED_STEPS = [SagaStep.RESERVE_STOCK, SagaStep.CHARGE_PAYMENT, SagaStep.CONFIRM_ORDER]


@transaction.atomic(savepoint=False)
def payment_succeeded(*, order_id: str, payment_id: str) -> None:
    """CONFIRMED, in one statement: the saga COMPLETED with its payment, the
    order's move and its history row, the three steps on the timeline (those
    there already skipped); then `order.confirmed`. The saga's row lock
    serialises it with the order's other events, as in `stock_reserved`; an
    order moved meanwhile by another hand (the saga's row updated, the order's
    not) is refused, which rolls the statement back. Nothing is written for a
    settled, orchestrated or unknown order."""
    if not order_id.isdigit():
        logger.warning("event for an order id this service never issued", extra={"order_id": order_id})
        return
    now = timezone.now()
    params: list[Any] = [
        payment_id,
        SagaStatus.COMPLETED,
        now,
        int(order_id),
        SagaStatus.RUNNING,
        SagaMode.CHOREOGRAPHY,
        OrderStatus.PENDING,
        *confirming_params(now=now, steps=_CONFIRMED_STEPS),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_CONFIRMED, params)
        row = cursor.fetchone()
    if row is None:
        if not OrderSaga.objects.filter(pk=int(order_id)).exists():
            logger.warning("event for an unknown order", extra={"order_id": order_id})
        return
    saga_order_id, email, full_name, moved_id, user_id, total, currency, saga_mode, created_at = row
    if moved_id is None:
        raise ConflictError(
            OrderErrorCode.INVALID_STATUS_TRANSITION,
            "The order left PENDING while its payment was being recorded.",
            details={"order_id": saga_order_id, "to_status": OrderStatus.CONFIRMED},
        )
    order = as_stored(
        Order(
            id=moved_id,
            user_id=user_id,
            status=OrderStatus.CONFIRMED,
            total=total,
            currency=currency,
            saga_mode=saga_mode,
            created_at=created_at,
            updated_at=now,
        )
    )
    count_saga_outcome(order)
    logger.info("order confirmed", extra={"order_id": moved_id})
    publish_order_confirmed(order=order, customer=Customer(email, full_name) if email else None)


@transaction.atomic(savepoint=False)
def payment_failed(*, order_id: str, reason: str) -> None:
    saga = _active_saga(order_id)
    if saga is None:
        return
    _reserved(saga)
    cancel_reason = PAYMENT_REFUSALS.get(reason, CancelReason.PAYMENT_FAILED)
    timeline_record(
        order_id=saga.order_id,
        step=SagaStep.CHARGE_PAYMENT,
        status=TimelineStatus.FAILED,
        error=cancel_reason,
    )
    _cancel(saga, cancel_reason)


@transaction.atomic(savepoint=False)
def compensation_done(*, order_id: str, step: SagaStep) -> None:
    """stock.released / payment.refunded for a choreographed order: timeline only."""
    order = _order(order_id)
    if order is None or order.saga_mode != SagaMode.CHOREOGRAPHY:
        return
    timeline_record(order_id=order.pk, step=step, status=TimelineStatus.COMPENSATED)


def saga_expire_overdue() -> list[int]:
    """Cancels every choreographed order still PENDING CHOREOGRAPHY_DEADLINE_S
    after it was placed (a batch per run); returns their ids."""
    deadline = timezone.now() - timedelta(seconds=float(settings.CHOREOGRAPHY_DEADLINE_S))
    with transaction.atomic():
        overdue = list(
            OrderSaga.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("order")
            .filter(
                order__saga_mode=SagaMode.CHOREOGRAPHY,
                order__status=OrderStatus.PENDING,
                order__created_at__lt=deadline,
            )
            .order_by("order__created_at")[:EXPIRE_BATCH]
        )
        for saga in overdue:
            step = saga.current_step or SagaStep.RESERVE_STOCK
            logger.warning(
                "choreographed order past its deadline: cancelling",
                extra={
                    "order_id": saga.order_id,
                    "step": step,
                    "placed_at": saga.order.created_at.isoformat(),
                },
            )
            timeline_record(
                order_id=saga.order_id,
                step=step,
                status=TimelineStatus.FAILED,
                error=CancelReason.SYSTEM_ERROR,
            )
            saga.last_error = f"{DEADLINE_ERROR} at {step}"
            _cancel(saga, CancelReason.SYSTEM_ERROR)
    return [saga.order_id for saga in overdue]


def _order(order_id: str) -> Order | None:
    if not order_id.isdigit():
        return None
    return Order.objects.filter(pk=int(order_id)).first()


def _active_saga(order_id: str) -> OrderSaga | None:
    """The order's saga, locked, if the order is choreographed and still PENDING."""
    if not order_id.isdigit():
        logger.warning("event for an order id this service never issued", extra={"order_id": order_id})
        return None
    saga = OrderSaga.objects.select_for_update().select_related("order").filter(pk=int(order_id)).first()
    if saga is None:
        logger.warning("event for an unknown order", extra={"order_id": order_id})
        return None
    if saga.order.saga_mode != SagaMode.CHOREOGRAPHY or saga.order.status != OrderStatus.PENDING:
        return None
    return saga


def _reserved(saga: OrderSaga) -> None:
    timeline_record(order_id=saga.order_id, step=SagaStep.RESERVE_STOCK, status=TimelineStatus.SUCCEEDED)
    if saga.current_step == SagaStep.RESERVE_STOCK:
        saga.current_step = SagaStep.CHARGE_PAYMENT


def _cancel(saga: OrderSaga, reason: CancelReason) -> None:
    """`saga.order`: read with the saga (or just placed), the copy the move starts from."""
    order = order_transition(
        order_id=saga.order_id,
        to_status=OrderStatus.CANCELLED,
        reason=reason,
        known=saga.order,
        savepoint=False,
    )
    publish_order_cancelled(
        order=order,
        reservation_id=saga.reservation_id,
        payment_id=saga.payment_id,
        customer=saga.customer,
    )
    timeline_record(order_id=saga.order_id, step=SagaStep.CANCEL_ORDER, status=TimelineStatus.SUCCEEDED)
    saga.status, saga.current_step, saga.failure_reason = SagaStatus.COMPENSATED, None, reason
    saga.save()
