"""The orchestrated order saga: order_service drives every step itself.

Forward: verify_user → reserve_stock → charge_payment → confirm_order
(CONFIRMED + `order.confirmed`, in the transaction that records the charge).
product_service commits the held reservation when `order.confirmed` reaches it,
as in choreography: the event is in the outbox with the confirmation, so the
commit is as certain as the confirmation, and no remote call (nor a step that
could fail) follows the charge.
A step that upstream refuses fails the saga with the refusal's reason; the
compensations of what succeeded then run in reverse order (refund_payment,
release_stock) and cancel_order ends it (CANCELLED + `order.cancelled`).

The state lives in `OrderSaga`, so each step is a short Celery task
(`orders.tasks`) that:

1. claims the step (`_claim`): it must still be the saga's current step — a
   duplicate or late task finds it is not and does nothing;
2. calls upstream outside any transaction (idempotent per order id there);
3. records the outcome and moves the saga on under a row lock, only if the step
   is still current;
4. runs the step that is now current in the same task, until the saga is over
   or a step must wait (a transient failure: the task retries that step later).

One task thus usually carries a whole saga: every step is still persisted before
the next one starts, so what a crash interrupts resumes from the stored state,
but the saga pays one Celery round trip instead of one per step. The
transaction that records a forward step's success also claims the next step for
the same task (its first attempt), so a forward step costs one short
transaction besides its upstream call, and the order is read once per task.
The steps, what undoes each and what follows it are one table, `STEPS`.

A crash anywhere leaves the current step in the table: the task is delivered
again (acks late) or the sweeper re-enqueues it after SAGA_STALL_SECONDS, and
re-running it asks upstream again, which answers the same thing. A transient
failure is retried with exponential backoff and jitter; a forward step before
the charge that keeps failing gives up after SAGA_STEP_MAX_ATTEMPTS runs and
compensates as `system_error` (including the compensation of its own step,
whose outcome is then unknown). Compensations never give up.

Once the money is taken the saga only goes forward: a step after a
successful charge (`ForwardStep.may_give_up` False) never gives up and never
compensates. The only one, confirm_order, is local (no upstream call): it runs
in the transaction that records the charge, or as its own step for a saga
stored at it (by a version that committed the stock over HTTP first), retried
like an outage (a failure of its own database) until it lands; past
SAGA_STEP_MAX_ATTEMPTS each retry logs "saga stuck going forward" at error
level, and the order shows in `comptoir_saga_oldest_pending_age_seconds` (the
saga-stuck alert).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from .customers import customer_verify
from .models import (
    ACTIVE_SAGA_STATUSES,
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
)
from .product_quotes import RequestedLine
from .publishing import publish_order_cancelled, publish_order_confirmed
from .transitions import (
    SagaOpening,
    confirming_ctes,
    confirming_params,
    count_saga_outcome,
    order_transition,
    timeline_record,
)
from .upstream import (
    StepRefused,
    payment_charge,
    payment_refund,
    stock_release,
    stock_reserve,
)

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500
SWEEP_BATCH = 500


@dataclass(frozen=True)
class _Claim:
    """What a step needs to know: read when the task claimed its first step,
    then carried along with what each step stored (the customer's contact)."""

    order: Order
    # The order's lines as the reservation names them (product, quantity, unit price).
    lines: tuple[RequestedLine, ...]
    compensation_plan: tuple[str, ...]
    customer: Customer | None


# ------------------------------------------------------------------ entry points


def saga_opening() -> SagaOpening:
    """The saga of an order being placed: at its first step, verify_user (no
    timeline entry yet: the step writes it)."""
    return SagaOpening(current_step=SagaStep.VERIFY_USER, stall_deadline=_stall_deadline())


def saga_start(*, saga: OrderSaga) -> None:
    """In the placing transaction, once its statement wrote the order and `saga`
    (`saga_opening`): the first step is enqueued when that commits."""
    _enqueue_on_commit(saga.order_id, SagaStep.VERIFY_USER)


def saga_run_step(*, order_id: int, step: str) -> None:
    """Runs `step` of the order's saga if it is the current one, then every step
    that follows it, until the saga is over; does nothing if `step` is not current.

    Raises a transient error (UpstreamError...) for the task to retry the step
    that is then current (`saga_current_step`); see `saga_retry_delay`.
    """
    claim = _claim(order_id, step)
    current = step
    while claim is not None:
        next_step, carried = _run_one(order_id, current, claim)
        if next_step is None:
            return
        # A forward success claimed its successor already; anything else claims it now.
        claim = carried if carried is not None else _claim(order_id, next_step)
        current = next_step


def saga_current_step(*, order_id: int) -> str | None:
    """The step an unfinished saga waits on, or None when it is over (or unknown)."""
    saga = OrderSaga.objects.filter(pk=order_id, status__in=ACTIVE_SAGA_STATUSES).only("current_step").first()
    return saga.current_step if saga is not None else None


def _run_one(order_id: int, step: str, claim: _Claim) -> tuple[str | None, _Claim | None]:
    """Runs the claimed `step`; returns the step that is current after it, if any,
    and the claim on it when this task already holds it (a forward success)."""
    if step == SagaStep.CANCEL_ORDER:
        _cancel(order_id)
        return None, None
    if step in COMPENSATIONS:
        return _run_compensation(order_id, step, claim), None
    action = STEPS[step].action
    if action is None:
        # The local step (confirm_order), current only in a saga stored at it by
        # an earlier version (see the module's docstring); `_advance` runs it otherwise.
        _confirm(claim)
        return None, None
    try:
        result = action(claim)
    except StepRefused as refusal:
        # Every step with an upstream call comes before the charge: a refusal fails the saga.
        return _fail(order_id, step, refusal.reason, str(refusal), outcome_unknown=False), None
    carried = _carried(claim, result)
    next_step = _advance(carried, step, result)
    return next_step, carried if next_step is not None else None


def _carried(claim: _Claim, result: dict[str, str | None]) -> _Claim:
    """The claim with what `result` stores that a later step needs (the contact)."""
    email = result.get("customer_email")
    if not email:
        return claim
    return replace(claim, customer=Customer(email, result.get("customer_name") or ""))


def saga_retry_delay(*, order_id: int, step: str, error: str) -> float | None:
    """After a transient failure of `step`: seconds until the next try, or None
    when there is nothing to retry (the step is no longer current, or a forward
    step that may give up has used its attempts: the saga then compensates as
    system_error). A step after the charge is retried for ever."""
    with transaction.atomic():
        saga = _locked_current(order_id, step)
        if saga is None:
            return None
        saga.last_error = error[:MAX_ERROR_LENGTH]
        if _out_of_attempts(step, saga.attempts):
            saga.save(update_fields=["last_error", "updated_at"])
            message = f"gave up after {saga.attempts} attempts: {error}"
            _enqueue_on_commit(
                order_id, _fail(order_id, step, CancelReason.SYSTEM_ERROR, message, outcome_unknown=True)
            )
            return None
        delay = retry_delay(saga.attempts)
        if step in FORWARD_STEPS and saga.attempts >= settings.SAGA_STEP_MAX_ATTEMPTS:
            _log_stuck_forward(saga, delay)
        saga.stall_deadline = _stall_deadline(extra_s=delay)
        saga.save(update_fields=["last_error", "stall_deadline", "updated_at"])
        return delay


def saga_sweep_stalled() -> list[int]:
    """Re-enqueues the current step of every orchestrated saga that made no
    progress before its stall deadline; returns their order ids."""
    with transaction.atomic():
        stalled = list(
            OrderSaga.objects.select_for_update(skip_locked=True)
            .filter(
                status__in=ACTIVE_SAGA_STATUSES,
                stall_deadline__lt=timezone.now(),
                order__saga_mode=SagaMode.ORCHESTRATION,
            )
            .order_by("stall_deadline")[:SWEEP_BATCH]
        )
        for saga in stalled:
            assert saga.current_step is not None
            logger.warning(
                "saga stalled, re-enqueuing its step",
                extra={"order_id": saga.order_id, "step": saga.current_step, "attempts": saga.attempts},
            )
            saga.stall_deadline = _stall_deadline()
            saga.save(update_fields=["stall_deadline", "updated_at"])
            _enqueue_on_commit(saga.order_id, saga.current_step)
    return [saga.order_id for saga in stalled]


def retry_delay(attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(
        float(settings.SAGA_RETRY_BACKOFF_MAX_S), float(settings.SAGA_RETRY_BACKOFF_S) * 2 ** (attempt - 1)
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - spreading retries, not secrets


# ------------------------------------------------------------------ the steps' upstream calls


def _verify_user(claim: _Claim) -> dict[str, str | None]:
    customer = customer_verify(user_id=claim.order.user_id)
    # Stored with the step's success, for the mails' events (no second lookup).
    return {"customer_email": customer.email, "customer_name": customer.full_name}


def _reserve_stock(claim: _Claim) -> dict[str, str | None]:
    order = claim.order
    return {"reservation_id": stock_reserve(order_id=order.pk, lines=claim.lines, currency=order.currency)}


def _charge_payment(claim: _Claim) -> dict[str, str | None]:
    order = claim.order
    payment_id = payment_charge(
        order_id=order.pk, user_id=order.user_id, amount=order.total, currency=order.currency
    )
    return {"payment_id": payment_id}


@dataclass(frozen=True)
class ForwardStep:
    """A forward step: its upstream call (None: a local step, run in the
    transaction that records its predecessor), the compensation that undoes it
    (if it changes something upstream), the step after it (None: the order is
    confirmed), and whether it may fail the saga (False once the money is taken:
    it is retried until it succeeds)."""

    action: Callable[[_Claim], dict[str, str | None]] | None
    compensation: SagaStep | None
    next: SagaStep | None
    may_give_up: bool = True


# The forward path in order; compensations run newest first.
STEPS: dict[str, ForwardStep] = {
    SagaStep.VERIFY_USER: ForwardStep(_verify_user, compensation=None, next=SagaStep.RESERVE_STOCK),
    SagaStep.RESERVE_STOCK: ForwardStep(
        _reserve_stock, compensation=SagaStep.RELEASE_STOCK, next=SagaStep.CHARGE_PAYMENT
    ),
    SagaStep.CHARGE_PAYMENT: ForwardStep(
        _charge_payment, compensation=SagaStep.REFUND_PAYMENT, next=SagaStep.CONFIRM_ORDER
    ),
    # After the charge: forward only, and local (product_service commits the
    # stock on `order.confirmed`).
    SagaStep.CONFIRM_ORDER: ForwardStep(None, compensation=None, next=None, may_give_up=False),
}
FORWARD_STEPS = tuple(STEPS)
COMPENSATIONS: dict[str, Callable[[int], None]] = {
    SagaStep.REFUND_PAYMENT: lambda order_id: payment_refund(order_id=order_id),
    SagaStep.RELEASE_STOCK: lambda order_id: stock_release(order_id=order_id),
}
# The Celery task that runs a step (registered by `orders.tasks`), found by name
# so this module does not import its own entry points.
STEP_TASK_NAME = "orders.saga.{step}"


# ------------------------------------------------------------------ state moves


_ORDER_TABLE, _LINE_TABLE = Order._meta.db_table, OrderLine._meta.db_table
_ORDER_FIELDS = [field.attname for field in Order._meta.concrete_fields]
# One statement: the attempt counted (the UPDATE takes the row lock and re-checks
# the step and the attempts left under it), and what the steps need read with it.
_CLAIM = (
    f"WITH claimed AS (UPDATE {OrderSaga._meta.db_table} SET attempts = attempts + 1, "  # noqa: S608 - the models' own tables
    "stall_deadline = %s, updated_at = %s "
    "WHERE order_id = %s AND status = ANY(%s) AND current_step = %s AND attempts < %s "
    "RETURNING order_id, compensation_plan, customer_email, customer_name) "
    "SELECT c.compensation_plan::text, c.customer_email, c.customer_name, "
    "(SELECT coalesce(json_agg(json_build_array(l.product_id, l.quantity, l.unit_price::text) "
    f"ORDER BY l.id), '[]')::text FROM {_LINE_TABLE} l WHERE l.order_id = o.id), "
    + ", ".join(f"o.{field.column}" for field in Order._meta.concrete_fields)
    + f" FROM claimed c JOIN {_ORDER_TABLE} o ON o.id = c.order_id"
)
# Above any count of attempts: the bound of a step that never gives up.
_NO_LIMIT = 2**31 - 1


def _claim(order_id: int, step: str) -> _Claim | None:
    """Counts an attempt of `step` if it is current; None if it is not (a
    duplicate or stale task) or if a forward step has no attempts left.

    The attempt is counted by one conditional UPDATE that also reads the order,
    its lines and the saga's plan and contact (`_CLAIM`); when it changes nothing,
    the locking path below finds out why (and fails a step out of attempts)."""
    limit = settings.SAGA_STEP_MAX_ATTEMPTS if _limited(step) else _NO_LIMIT
    now = timezone.now()
    params = [_stall_deadline(), now, order_id, [str(s) for s in ACTIVE_SAGA_STATUSES], step, limit]
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, params)
        row = cursor.fetchone()
    if row is None:
        return _claim_locked(order_id, step)
    plan, email, name, lines, *order_values = row
    order = Order.from_db(connection.alias, _ORDER_FIELDS, order_values)
    return _Claim(
        order=order,
        lines=tuple(
            RequestedLine(product, quantity, Decimal(price)) for product, quantity, price in json.loads(lines)
        ),
        compensation_plan=tuple(json.loads(plan)),
        customer=Customer(email, name) if email else None,
    )


def _claim_locked(order_id: int, step: str) -> _Claim | None:
    """`_claim` under the row lock, read first: the step is no longer current, or out of attempts."""
    with transaction.atomic():
        saga = _locked_current(order_id, step)
        if saga is None:
            return None
        if _out_of_attempts(step, saga.attempts):
            # Runs that never reported back (killed workers) count too.
            message = f"gave up after {saga.attempts} attempts: {saga.last_error or 'no answer'}"
            _enqueue_on_commit(
                order_id, _fail(order_id, step, CancelReason.SYSTEM_ERROR, message, outcome_unknown=True)
            )
            return None
        saga.attempts += 1
        saga.stall_deadline = _stall_deadline()
        saga.save(update_fields=["attempts", "stall_deadline", "updated_at"])
        order = Order.objects.get(pk=order_id)
        lines = tuple(
            RequestedLine(line.product_id, line.quantity, line.unit_price)
            for line in OrderLine.objects.filter(order_id=order_id).order_by("id")
        )
        return _Claim(
            order=order, lines=lines, compensation_plan=tuple(saga.compensation_plan), customer=saga.customer
        )


def _limited(step: str) -> bool:
    """A forward step that may give up (after SAGA_STEP_MAX_ATTEMPTS runs)."""
    spec = STEPS.get(step)
    return spec is not None and spec.may_give_up


def _out_of_attempts(step: str, attempts: int) -> bool:
    """A forward step that may give up has had its SAGA_STEP_MAX_ATTEMPTS runs."""
    return _limited(step) and attempts >= settings.SAGA_STEP_MAX_ATTEMPTS


def _log_stuck_forward(saga: OrderSaga, delay: float) -> None:
    logger.error(
        "saga stuck going forward after the charge: retrying until upstream accepts",
        extra={
            "order_id": saga.order_id,
            "step": saga.current_step,
            "attempts": saga.attempts,
            "retry_in_s": round(delay, 2),
            "error": saga.last_error,
        },
    )


def _locked_current(order_id: int, step: str) -> OrderSaga | None:
    saga = OrderSaga.objects.select_for_update().filter(pk=order_id).first()
    if saga is None or saga.status not in ACTIVE_SAGA_STATUSES or saga.current_step != step:
        return None
    return saga


def _move_to(
    saga: OrderSaga,
    step: str | None,
    *,
    status: str | None = None,
    last_error: str | None = None,
    attempts: int = 0,
) -> None:
    """Makes `step` current (None: the saga is over); `last_error` replaces the
    stored one when given (a failure's message stays through the compensations).
    The caller runs `step` next (or enqueues it)."""
    saga.current_step = step
    saga.attempts = attempts
    if last_error is not None:
        saga.last_error = last_error[:MAX_ERROR_LENGTH]
    saga.stall_deadline = _stall_deadline()
    if status is not None:
        saga.status = status
    saga.save()


def _advance(claim: _Claim, step: str, result: dict[str, str | None]) -> str | None:
    """Records `step`'s success and makes its successor current, if `step` is
    still current: a conditional UPDATE (it takes the row lock and re-checks
    the step under it, as `_locked_current` would) instead of a locking read
    and a write."""
    order_id = claim.order.pk
    next_step = STEPS[step].next
    assert next_step is not None  # the last forward step is local and ends in _confirm
    recorded = {field: value for field, value in result.items() if value is not None}
    if STEPS[next_step].action is None:
        # A local step needs no call: it lands in this transaction.
        _confirm(claim, step, recorded)
        return None
    # Claimed here for the task that runs it next: its first attempt.
    if not _move_on(order_id, step, next_step, recorded):
        return None
    return next_step


_SAGA_TABLE, _TIMELINE_TABLE = OrderSaga._meta.db_table, SagaTimelineEntry._meta.db_table
# What a forward step's result may store on the saga (`_carried` reads the contact back).
_RECORDED_FIELDS = ("reservation_id", "payment_id", "customer_email", "customer_name")
_MOVE_ON = (
    f"WITH moved AS (UPDATE {_SAGA_TABLE} SET {{recorded}}current_step = %s, attempts = 1, "  # noqa: S608
    "last_error = '', stall_deadline = %s, updated_at = %s "
    "WHERE order_id = %s AND status = ANY(%s) AND current_step = %s RETURNING order_id), "
    f"entry AS (INSERT INTO {_TIMELINE_TABLE} (order_id, step, status, error, at) "
    "SELECT order_id, %s, %s, NULL, %s FROM moved ON CONFLICT DO NOTHING) "
    "SELECT count(*) FROM moved"
)


def _stored_fields(recorded: dict[str, str]) -> list[str]:
    """The saga's columns `recorded` (a step's result) sets, in a fixed order."""
    unknown = set(recorded) - set(_RECORDED_FIELDS)
    if unknown:
        raise ValueError(f"a step's result names fields the saga does not store: {sorted(unknown)}")
    return [name for name in _RECORDED_FIELDS if name in recorded]


def _move_on(order_id: int, step: str, next_step: str, recorded: dict[str, str]) -> bool:
    """Makes `next_step` current if `step` still is, claimed for this task (its
    first attempt), with what `step` stored and its success on the timeline, in
    one statement: the UPDATE and the timeline's INSERT land together or not at
    all without a transaction around them (three statements fewer than a
    transaction with a statement each).
    False if `step` was no longer current (nothing written)."""
    fields = _stored_fields(recorded)
    now = timezone.now()
    statement = _MOVE_ON.format(recorded="".join(f"{name} = %s, " for name in fields))
    params: list[Any] = [
        *(recorded[name] for name in fields),
        next_step,
        _stall_deadline(),
        now,
        order_id,
        [str(status) for status in ACTIVE_SAGA_STATUSES],
        step,
        step,
        TimelineStatus.SUCCEEDED,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return row is not None and row[0] == 1


_CONFIRM = (
    f"WITH saga AS (UPDATE {_SAGA_TABLE} SET {{recorded}}status = %s, current_step = NULL, "  # noqa: S608
    "attempts = 0, last_error = '', stall_deadline = %s, updated_at = %s "
    "WHERE order_id = %s AND status = ANY(%s) AND current_step = %s RETURNING order_id), "
    + confirming_ctes("o.id")
    + "SELECT saga.order_id, moved.id FROM saga LEFT JOIN moved ON moved.id = saga.order_id"
)


@transaction.atomic
def _confirm(
    claim: _Claim, step: str = SagaStep.CONFIRM_ORDER, recorded: dict[str, str] | None = None
) -> None:
    """CONFIRMED and `order.confirmed` (product_service commits the stock on it),
    if `step` is still current: the saga COMPLETED with what `step` stored, the
    order's move and its history row, `step` and CONFIRM_ORDER on the timeline,
    in one statement (was five), then the event in the same transaction. The
    claim's copy of the order and contact serve: nothing is read again. An order
    moved meanwhile by another hand (a cancellation) gets the refusal the status
    machine gives, which rolls the statement back."""
    recorded = recorded or {}
    fields = _stored_fields(recorded)
    order_id, now = claim.order.pk, timezone.now()
    steps = list(dict.fromkeys([step, SagaStep.CONFIRM_ORDER]))
    params: list[Any] = [
        *(recorded[name] for name in fields),
        SagaStatus.COMPLETED,
        _stall_deadline(),
        now,
        order_id,
        [str(status) for status in ACTIVE_SAGA_STATUSES],
        step,
        *confirming_params(now=now, steps=steps),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_CONFIRM.format(recorded="".join(f"{name} = %s, " for name in fields)), params)
        row = cursor.fetchone()
    if row is None:
        return  # `step` was no longer current: nothing written
    if row[1] is None:
        # Not PENDING any more: the status machine's refusal, with the status it found.
        order_transition(order_id=order_id, to_status=OrderStatus.CONFIRMED, savepoint=False)
    order = claim.order
    order.status, order.updated_at = OrderStatus.CONFIRMED, now
    count_saga_outcome(order)
    logger.info("order confirmed", extra={"order_id": order_id})
    publish_order_confirmed(order=order, customer=claim.customer)


@transaction.atomic
def _fail(order_id: int, step: str, reason: str, message: str, *, outcome_unknown: bool) -> str | None:
    """Fails forward `step`: plans the compensations of what succeeded (and of
    `step` itself when its outcome is unknown), newest first, then cancel.
    Returns the first of them (None if `step` was no longer current)."""
    saga = _locked_current(order_id, step)
    if saga is None:
        return None
    logger.info("saga step failed", extra={"order_id": order_id, "step": step, "reason": reason})
    timeline_record(order_id=order_id, step=step, status=TimelineStatus.FAILED, error=reason)
    done = set(
        SagaTimelineEntry.objects.filter(order_id=order_id, status=TimelineStatus.SUCCEEDED).values_list(
            "step", flat=True
        )
    )
    if outcome_unknown:
        done.add(step)
    plan = [
        spec.compensation
        for forward, spec in reversed(STEPS.items())
        if spec.compensation is not None and forward in done
    ]
    saga.compensation_plan = plan
    saga.failure_reason = reason
    next_step = plan[0] if plan else SagaStep.CANCEL_ORDER
    _move_to(saga, next_step, status=SagaStatus.COMPENSATING, last_error=message)
    return next_step


def _run_compensation(order_id: int, step: str, claim: _Claim) -> str | None:
    error: str | None = None
    try:
        COMPENSATIONS[step](order_id)
    except StepRefused as refusal:
        # Upstream will never do it (e.g. the stock was already sold): say so
        # loudly and go on with the rest, which may still succeed.
        logger.error(
            "saga compensation refused", extra={"order_id": order_id, "step": step, "error": str(refusal)}
        )
        outcome, error = TimelineStatus.FAILED, str(refusal)
    else:
        outcome = TimelineStatus.COMPENSATED
    with transaction.atomic():
        saga = _locked_current(order_id, step)
        if saga is None:
            return None
        timeline_record(order_id=order_id, step=step, status=outcome, error=error)
        plan = list(claim.compensation_plan)
        later = plan[plan.index(step) + 1 :] if step in plan else []
        next_step = later[0] if later else SagaStep.CANCEL_ORDER
        _move_to(saga, next_step)
        return next_step


@transaction.atomic
def _cancel(order_id: int) -> None:
    saga = _locked_current(order_id, SagaStep.CANCEL_ORDER)
    if saga is None:
        return
    order = order_transition(
        order_id=order_id,
        to_status=OrderStatus.CANCELLED,
        reason=saga.failure_reason or CancelReason.SYSTEM_ERROR,
    )
    publish_order_cancelled(
        order=order,
        reservation_id=saga.reservation_id,
        payment_id=saga.payment_id,
        customer=saga.customer,
    )
    timeline_record(order_id=order_id, step=SagaStep.CANCEL_ORDER, status=TimelineStatus.SUCCEEDED)
    _move_to(saga, None, status=SagaStatus.COMPENSATED)


def _stall_deadline(*, extra_s: float = 0.0) -> datetime:
    return timezone.now() + timedelta(seconds=float(settings.SAGA_STALL_SECONDS) + extra_s)


def _enqueue_on_commit(order_id: int, step: str | None) -> None:
    if step is not None:
        transaction.on_commit(lambda: _enqueue(order_id, step))


def _enqueue(order_id: int, step: str) -> None:
    try:
        current_app.tasks[STEP_TASK_NAME.format(step=step)].delay(order_id)
    except (BrokerError, OSError):  # the broker is down: the sweeper enqueues it later
        logger.exception("could not enqueue saga step", extra={"order_id": order_id, "step": step})
