"""Celery entry points of the orchestrated saga: one task per step, and the sweeper.

A task only claims, runs and reports its step through `orders.orchestration`;
on a transient failure it asks the saga how long to wait and retries then.
Tasks are acknowledged late (chassis settings), so a worker killed mid-step
has its task delivered again; the step is idempotent, so that is harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from comptoir import UpstreamError, metrics

from . import choreography, orchestration, reconciliation
from .models import SagaStep
from .orchestration import STEP_TASK_NAME

logger = logging.getLogger(__name__)

# Worth another try later: upstream unreachable, slow or 5xx (UpstreamError),
# or our own database blinking.
TRANSIENT_ERRORS = (UpstreamError, DatabaseError)
# Retries are counted by the saga (OrderSaga.attempts, which survives a lost
# task), not by Celery; nobody reads a step's return value.
STEP_TASK_OPTIONS: dict[str, Any] = {"acks_late": True, "max_retries": None, "ignore_result": True}


def _run_step(task: Task[Any, Any], order_id: int, step: SagaStep) -> None:
    try:
        orchestration.saga_run_step(order_id=order_id, step=step)
    except TRANSIENT_ERRORS as error:
        # The saga went on from `step` in this task: the step that failed is the current one.
        failed = orchestration.saga_current_step(order_id=order_id)
        if failed is None:
            return
        message = f"{type(error).__name__}: {error}"
        delay = orchestration.saga_retry_delay(order_id=order_id, step=failed, error=message)
        if delay is None:
            return
        logger.warning(
            "saga step failed, retrying",
            extra={"order_id": order_id, "step": failed, "retry_in_s": round(delay, 2), "error": message},
        )
        if failed == step:
            raise task.retry(countdown=delay, max_retries=None, exc=error) from None
        STEP_TASKS[failed].apply_async((order_id,), countdown=delay)


@shared_task(bind=True, name=STEP_TASK_NAME.format(step=SagaStep.VERIFY_USER), **STEP_TASK_OPTIONS)
def verify_user(self: Task[[int], None], order_id: int) -> None:
    _run_step(self, order_id, SagaStep.VERIFY_USER)


@shared_task(bind=True, name=STEP_TASK_NAME.format(step=SagaStep.RESERVE_STOCK), **STEP_TASK_OPTIONS)
def reserve_stock(self: Task[[int], None], order_id: int) -> None:
    _run_step(self, order_id, SagaStep.RESERVE_STOCK)


@shared_task(bind=True, name=STEP_TASK_NAME.format(step=SagaStep.CHARGE_PAYMENT), **STEP_TASK_OPTIONS)
def charge_payment(self: Task[[int], None], order_id: int) -> None:
    _run_step(self, order_id, SagaStep.CHARGE_PAYMENT)


@shared_task(bind=True, name=STEP_TASK_NAME.format(step=SagaStep.CONFIRM_ORDER), **STEP_TASK_OPTIONS)
def confirm_order(self: Task[[int], None], order_id: int) -> None:
    _run_step(self, order_id, SagaStep.CONFIRM_ORDER)


@shared_task(bind=True, name=STEP_TASK_NAME.format(step=SagaStep.REFUND_PAYMENT), **STEP_TASK_OPTIONS)
def refund_payment(self: Task[[int], None], order_id: int) -> None:
    _run_step(self, order_id, SagaStep.REFUND_PAYMENT)


@shared_task(bind=True, name=STEP_TASK_NAME.format(step=SagaStep.RELEASE_STOCK), **STEP_TASK_OPTIONS)
def release_stock(self: Task[[int], None], order_id: int) -> None:
    _run_step(self, order_id, SagaStep.RELEASE_STOCK)


@shared_task(bind=True, name=STEP_TASK_NAME.format(step=SagaStep.CANCEL_ORDER), **STEP_TASK_OPTIONS)
def cancel_order(self: Task[[int], None], order_id: int) -> None:
    _run_step(self, order_id, SagaStep.CANCEL_ORDER)


STEP_TASKS: dict[str, Task[[int], None]] = {
    SagaStep.VERIFY_USER: verify_user,
    SagaStep.RESERVE_STOCK: reserve_stock,
    SagaStep.CHARGE_PAYMENT: charge_payment,
    SagaStep.CONFIRM_ORDER: confirm_order,
    SagaStep.REFUND_PAYMENT: refund_payment,
    SagaStep.RELEASE_STOCK: release_stock,
    SagaStep.CANCEL_ORDER: cancel_order,
}


@shared_task(name="orders.sweep_stalled_sagas", acks_late=True)
def sweep_stalled_sagas() -> list[int]:
    """Run by Celery beat every SAGA_SWEEP_INTERVAL_S: resumes stalled sagas."""
    return orchestration.saga_sweep_stalled()


@shared_task(name="orders.expire_choreographed_orders", acks_late=True)
def expire_choreographed_orders() -> list[int]:
    """Run by Celery beat every SAGA_SWEEP_INTERVAL_S: cancels choreographed
    orders past CHOREOGRAPHY_DEADLINE_S (their compensations follow the event)."""
    return choreography.saga_expire_overdue()


@shared_task(name="orders.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> dict[str, int]:
    """Run by Celery beat every RECONCILE_INTERVAL_S: checks the cross-service
    invariants and exports what it found as comptoir_reconciliation_violations.
    Orders, payments and reservations: those created in the last RECONCILE_WINDOW_S
    that settled since the previous periodic run could judge them (less
    RECONCILE_OVERLAP_S), so a run reads what is new, not the whole window again;
    orders PENDING past their deadline, wallets and stock: every run."""
    window_s = float(settings.RECONCILE_WINDOW_S)
    since = timezone.now() - timedelta(seconds=window_s) if window_s > 0 else None
    report = reconciliation.reconcile(since=since, settled_since=reconciliation.periodic_run_start())
    metrics.reconciliation_reported(report.by_kind())
    reconciliation.reconciliation_run_record(report=report, source="beat")
    log = logger.warning if report.total else logger.info
    log(
        "reconciliation finished",
        extra={
            "violations": report.total,
            "by_kind": {kind: count for kind, count in report.by_kind().items() if count},
            "samples": {kind.value: ids for kind, ids in report.samples.items()},
            "checked": report.checked,
        },
    )
    return report.by_kind()
