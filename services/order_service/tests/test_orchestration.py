"""The orchestrated saga against real HTTP stand-ins for user, product and
payment services: each outcome, its compensations, retries, crashes, the sweeper.

Tasks run eagerly here (the next step runs when the previous one's transaction
commits); tests/test_worker.py runs them through a real Celery worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from comptoir import ConflictError
from orders import orchestration
from orders.models import (
    CancelReason,
    Customer,
    Order,
    OrderSaga,
    OrderStatus,
    SagaMode,
    SagaStatus,
    SagaStep,
)
from orders.product_quotes import RequestedLine
from orders.tasks import STEP_TASKS, sweep_stalled_sagas
from orders.upstream import StepRefused, stock_reserve

from .conftest import ALICE, BOB, INACTIVE_USER, Upstreams
from .support import event_summary, timeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("upstreams")]

Settle = Callable[..., Order]

HAPPY_TIMELINE = [
    ("verify_user", "succeeded", None),
    ("reserve_stock", "succeeded", None),
    ("charge_payment", "succeeded", None),
    ("confirm_order", "succeeded", None),
]


@pytest.fixture
def placed(place_order: Callable[..., Any]) -> Order:
    """A placed order whose first task went to the (unconsumed) test queue."""
    response = place_order([(1, 2)])
    assert response.status_code == 202
    return Order.objects.get(pk=response.json()["id"])


def _contact(user_id: int) -> dict[str, str]:
    """The customer's contact as the user_service stub gives it: the verify step
    stores it and the mailed events carry it."""
    return {"customer_email": f"user{user_id}@comptoir.dev", "customer_name": f"User {user_id}"}


def _cancelled_event(order: Order, reason: str, **ids: str) -> tuple[str, str, dict[str, object]]:
    contact = _contact(order.user_id) if reason != "user_inactive" else {}
    return (
        "order.cancelled",
        str(order.pk),
        {"order_id": str(order.pk), "user_id": str(order.user_id), "reason": reason, **ids, **contact},
    )


def test_happy_path_confirms_and_publishes_order_confirmed(settle: Settle, upstreams: Upstreams) -> None:
    order = settle([(1, 2), (3, 1)])

    assert (order.status, order.cancel_reason) == (OrderStatus.CONFIRMED, None)
    # No call after the charge: product_service commits the stock on order.confirmed.
    assert upstreams.operations() == ["user", "reserve", "charge"]
    assert upstreams.users.calls("user")[0].path == f"/internal/users/{ALICE}/"
    assert upstreams.products.calls("reserve")[0].body == {
        "order_id": str(order.pk),
        "currency": "EUR",
        "lines": [
            {"product_id": 1, "quantity": 2, "unit_price": "12.50"},
            {"product_id": 3, "quantity": 1, "unit_price": "0.10"},
        ],
    }
    (charge,) = upstreams.payments.calls("charge")
    assert charge.body == {"order_id": str(order.pk), "user_id": ALICE, "amount": "25.10", "currency": "EUR"}
    assert charge.headers["Idempotency-Key"] == str(order.pk)
    assert upstreams.products.reservations[str(order.pk)]["status"] == "RESERVED"  # committed on the event
    assert (upstreams.products.stock[1], upstreams.products.stock[3]) == (98, 99)
    assert upstreams.payments.wallets[ALICE] == Decimal("474.90")
    assert timeline(order) == HAPPY_TIMELINE
    assert event_summary() == [
        (
            "order.confirmed",
            str(order.pk),
            {
                "order_id": str(order.pk),
                "user_id": str(ALICE),
                "amount": "25.10",
                "currency": "EUR",
                **_contact(ALICE),
            },
        )
    ]
    saga = OrderSaga.objects.get(pk=order.pk)
    assert (saga.status, saga.current_step, saga.attempts, saga.payment_id) == (
        SagaStatus.COMPLETED,
        None,
        0,
        "1",
    )
    assert [(c.from_status, c.to_status) for c in order.status_history.all()] == [
        (None, "PENDING"),
        ("PENDING", "CONFIRMED"),
    ]


@pytest.mark.parametrize("user_id", [INACTIVE_USER, 77], ids=["inactive", "unknown"])
def test_an_inactive_or_unknown_user_cancels_without_touching_stock_or_money(
    settle: Settle, upstreams: Upstreams, user_id: int
) -> None:
    order = settle(user_id=user_id)

    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.USER_INACTIVE)
    assert upstreams.operations() == ["user"]
    assert timeline(order) == [
        ("verify_user", "failed", "user_inactive"),
        ("cancel_order", "succeeded", None),
    ]
    assert event_summary() == [_cancelled_event(order, "user_inactive")]
    assert OrderSaga.objects.get(pk=order.pk).status == SagaStatus.COMPENSATED


def test_insufficient_stock_cancels_with_nothing_to_compensate(settle: Settle, upstreams: Upstreams) -> None:
    upstreams.products.stock[1] = 1

    order = settle([(1, 2)])

    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.INSUFFICIENT_STOCK)
    assert upstreams.operations() == ["user", "reserve"]
    assert upstreams.products.stock[1] == 1
    assert upstreams.payments.wallets[ALICE] == Decimal("500.00")
    assert timeline(order) == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "failed", "insufficient_stock"),
        ("cancel_order", "succeeded", None),
    ]
    assert event_summary() == [_cancelled_event(order, "insufficient_stock")]


def test_insufficient_funds_releases_the_stock_then_cancels(settle: Settle, upstreams: Upstreams) -> None:
    order = settle([(2, 1)], user_id=BOB)  # 89.99 EUR from a 20.00 EUR wallet

    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.INSUFFICIENT_FUNDS)
    assert upstreams.operations() == ["user", "reserve", "charge", "release"]
    assert upstreams.products.reservations[str(order.pk)]["status"] == "RELEASED"
    assert upstreams.products.stock[2] == 100
    assert upstreams.payments.wallets[BOB] == Decimal("20.00")
    assert timeline(order) == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "succeeded", None),
        ("charge_payment", "failed", "insufficient_funds"),
        ("release_stock", "compensated", None),
        ("cancel_order", "succeeded", None),
    ]
    assert event_summary() == [_cancelled_event(order, "insufficient_funds")]


def test_another_payment_refusal_cancels_as_payment_failed(settle: Settle, upstreams: Upstreams) -> None:
    upstreams.payments.refuse("charge", 409, "currency_mismatch")

    order = settle()

    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.PAYMENT_FAILED)
    assert upstreams.operations() == ["user", "reserve", "charge", "release"]
    assert timeline(order)[2:] == [
        ("charge_payment", "failed", "payment_failed"),
        ("release_stock", "compensated", None),
        ("cancel_order", "succeeded", None),
    ]


def test_a_saga_stored_at_confirm_order_confirms_without_calling_upstream(
    placed: Order, upstreams: Upstreams, celery_eager: None, run_on_commit: Callable[[], Any]
) -> None:
    # Where an earlier version (which committed the stock over HTTP) left a saga.
    OrderSaga.objects.filter(pk=placed.pk).update(
        current_step=SagaStep.CONFIRM_ORDER, reservation_id="r-1", payment_id="p-1", **_contact(ALICE)
    )

    with run_on_commit():
        STEP_TASKS[SagaStep.CONFIRM_ORDER].delay(placed.pk)

    placed.refresh_from_db()
    assert (placed.status, placed.cancel_reason) == (OrderStatus.CONFIRMED, None)
    assert upstreams.operations() == []
    saga = OrderSaga.objects.get(pk=placed.pk)
    assert (saga.status, saga.current_step) == (SagaStatus.COMPLETED, None)
    ((kind, _key, payload),) = event_summary()
    assert (kind, payload["customer_email"]) == ("order.confirmed", _contact(ALICE)["customer_email"])


def test_a_transient_503_is_retried_and_charges_once(settle: Settle, upstreams: Upstreams) -> None:
    # The client's own three tries all fail, so the task itself retries.
    upstreams.payments.fail("charge", 4)

    order = settle()

    assert order.status == OrderStatus.CONFIRMED
    charges = upstreams.payments.calls("charge")
    assert len(charges) == 5
    assert {c.headers["Idempotency-Key"] for c in charges} == {str(order.pk)}
    assert upstreams.payments.captured() == [str(order.pk)]
    assert upstreams.payments.wallets[ALICE] == Decimal("475.00")
    assert timeline(order) == HAPPY_TIMELINE
    # The retry's task claimed the charge from the stored saga, contact included.
    ((kind, _key, payload),) = event_summary()
    assert (kind, payload["customer_email"], payload["customer_name"]) == (
        "order.confirmed",
        *_contact(ALICE).values(),
    )


def test_a_forward_step_that_keeps_failing_gives_up_and_compensates_its_unknown_outcome(
    settle: Settle, upstreams: Upstreams, settings: Any
) -> None:
    settings.SAGA_STEP_MAX_ATTEMPTS = 3
    upstreams.products.fail("reserve", 100)

    order = settle()

    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.SYSTEM_ERROR)
    # The reservation may have been made before an answer was lost: release it.
    assert upstreams.operations() == ["user", "reserve", "reserve", "reserve", "release"]
    assert timeline(order) == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "failed", "system_error"),
        ("release_stock", "compensated", None),
        ("cancel_order", "succeeded", None),
    ]
    saga = OrderSaga.objects.get(pk=order.pk)
    assert saga.compensation_plan == ["release_stock"]
    assert saga.last_error.startswith(
        "gave up after 3 attempts: UpstreamError: product_service answered HTTP 503"
    )
    # A reservation still in flight when the saga gave up lands now: refused, nothing held.
    upstreams.products.failures.clear()
    with pytest.raises(StepRefused) as refused:
        stock_reserve(order_id=order.pk, lines=[RequestedLine(1, 2)], currency="EUR")
    assert (refused.value.reason, str(refused.value)) == (
        CancelReason.SYSTEM_ERROR,
        "product_service: the order was compensated before this step (order_compensated)",
    )
    assert upstreams.products.stock[1] == 100
    assert str(order.pk) not in upstreams.products.reservations


@pytest.mark.parametrize(
    ("service", "operation", "done"),
    [
        ("payments", "charge", ["user", "reserve", "charge", "release"]),
        ("products", "reserve", ["user", "reserve"]),
    ],
)
def test_a_step_refused_as_already_compensated_fails_without_compensating_itself(
    settle: Settle, upstreams: Upstreams, service: str, operation: str, done: list[str]
) -> None:
    getattr(upstreams, service).refuse(operation, 409, "order_compensated")

    order = settle()

    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.SYSTEM_ERROR)
    # Nothing was taken by the refused step: only the steps before it are undone.
    assert upstreams.operations() == done
    assert upstreams.payments.captured() == []
    assert upstreams.payments.wallets[ALICE] == Decimal("500.00")
    assert upstreams.products.stock[1] == 100
    step = "charge_payment" if operation == "charge" else "reserve_stock"
    assert (step, "failed", "system_error") in timeline(order)


def test_a_compensation_retries_until_it_succeeds(
    settle: Settle, upstreams: Upstreams, settings: Any
) -> None:
    settings.SAGA_STEP_MAX_ATTEMPTS = 2
    upstreams.products.fail("release", 5)  # more runs than a forward step may have

    order = settle([(2, 1)], user_id=BOB)

    assert order.status == OrderStatus.CANCELLED
    assert len(upstreams.products.calls("release")) == 6
    assert upstreams.products.stock[2] == 100


class _WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs, nothing catches it."""


@pytest.fixture
def crash_once_after(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Makes the worker 'die' once right after `step`'s upstream call returned."""
    real_advance = orchestration._advance
    crashed: list[str] = []

    def arm(step: str) -> None:
        def advance(claim: Any, current: str, result: dict[str, str | None]) -> str | None:
            if current == step and not crashed:
                crashed.append(current)
                raise _WorkerKilled
            return real_advance(claim, current, result)

        monkeypatch.setattr(orchestration, "_advance", advance)

    return arm


@pytest.mark.parametrize(
    ("step", "operation"),
    [(SagaStep.RESERVE_STOCK, "reserve"), (SagaStep.CHARGE_PAYMENT, "charge")],
)
def test_a_step_rerun_after_a_crash_has_no_second_effect(
    placed: Order,
    upstreams: Upstreams,
    crash_once_after: Callable[[str], None],
    celery_eager: None,
    run_on_commit: Callable[[], Any],
    step: str,
    operation: str,
) -> None:
    crash_once_after(step)
    with pytest.raises(_WorkerKilled), run_on_commit():
        STEP_TASKS[SagaStep.VERIFY_USER].delay(placed.pk)
    saga = OrderSaga.objects.get(pk=placed.pk)
    assert (saga.current_step, saga.attempts) == (step, 1)  # the call was made, not recorded

    # Redelivery (acks late) or the sweeper runs the step again.
    with run_on_commit():
        STEP_TASKS[step].delay(placed.pk)

    placed.refresh_from_db()
    assert placed.status == OrderStatus.CONFIRMED
    assert upstreams.operations().count(operation) == 2
    assert upstreams.products.stock[1] == 98
    assert upstreams.payments.captured() == [str(placed.pk)]
    assert upstreams.payments.wallets[ALICE] == Decimal("475.00")
    assert timeline(placed) == HAPPY_TIMELINE
    assert [e[0] for e in event_summary()] == ["order.confirmed"]


def test_a_stale_or_duplicate_step_task_does_nothing(
    settle: Settle, upstreams: Upstreams, run_on_commit: Callable[[], Any]
) -> None:
    order = settle()
    calls_before = upstreams.operations()

    with run_on_commit():
        for step in SagaStep:
            STEP_TASKS[step].delay(order.pk)
        STEP_TASKS[SagaStep.VERIFY_USER].delay(987654)  # no such saga

    assert upstreams.operations() == calls_before
    assert timeline(order) == HAPPY_TIMELINE
    assert len(event_summary()) == 1


def test_the_sweeper_re_enqueues_a_stalled_saga_and_only_that(
    placed: Order,
    upstreams: Upstreams,
    make_order: Callable[..., Order],
    celery_eager: None,
    run_on_commit: Callable[[], Any],
) -> None:
    # A placed order whose task was lost, one still within its deadline, and
    # a choreographed one (no coordinator to resume).
    OrderSaga.objects.filter(pk=placed.pk).update(stall_deadline=timezone.now() - timedelta(seconds=1))
    fresh = make_order()
    OrderSaga.objects.create(order=fresh, current_step=SagaStep.VERIFY_USER)
    Order.objects.filter(pk=fresh.pk).update(saga_mode=SagaMode.ORCHESTRATION)
    OrderSaga.objects.filter(pk=fresh.pk).update(stall_deadline=timezone.now() + timedelta(seconds=30))
    choreographed = make_order()
    Order.objects.filter(pk=choreographed.pk).update(saga_mode=SagaMode.CHOREOGRAPHY)
    OrderSaga.objects.create(
        order=choreographed,
        current_step=SagaStep.RESERVE_STOCK,
        stall_deadline=timezone.now() - timedelta(minutes=5),
    )

    with run_on_commit():
        swept = sweep_stalled_sagas.delay().get()

    assert swept == [placed.pk]
    placed.refresh_from_db()
    assert placed.status == OrderStatus.CONFIRMED
    assert timeline(placed) == HAPPY_TIMELINE
    assert OrderSaga.objects.get(pk=fresh.pk).attempts == 0
    assert upstreams.operations() == ["user", "reserve", "charge"]


def test_a_retry_pushes_the_stall_deadline_past_its_countdown(placed: Order, settings: Any) -> None:
    settings.SAGA_STALL_SECONDS = 30
    saga = OrderSaga.objects.get(pk=placed.pk)
    OrderSaga.objects.filter(pk=placed.pk).update(attempts=4)

    delay = orchestration.saga_retry_delay(order_id=placed.pk, step=SagaStep.VERIFY_USER, error="boom")

    assert delay is not None
    assert 4.0 <= delay <= 8.0
    saga.refresh_from_db()
    expected = timezone.now() + timedelta(seconds=30 + delay)
    assert abs((saga.stall_deadline - expected).total_seconds()) < 2
    assert saga.last_error == "boom"
    assert orchestration.saga_retry_delay(order_id=placed.pk, step=SagaStep.CHARGE_PAYMENT, error="x") is None


def test_a_claim_counts_its_attempt_and_reads_what_the_steps_need_in_one_statement(
    placed: Order, settings: Any
) -> None:
    settings.SAGA_STEP_MAX_ATTEMPTS = 3
    OrderSaga.objects.filter(pk=placed.pk).update(
        attempts=1,
        customer_email="alice@example.com",
        customer_name="Alice",
        compensation_plan=["release_stock"],
    )

    with CaptureQueriesContext(connection) as queries:
        claim = orchestration._claim(placed.pk, SagaStep.VERIFY_USER)

    assert claim is not None
    assert claim.lines == (RequestedLine(1, 2, Decimal("12.50")),)
    assert claim.customer == Customer("alice@example.com", "Alice")
    assert claim.compensation_plan == ("release_stock",)
    stored = Order.objects.get(pk=placed.pk)
    assert [(getattr(claim.order, f.attname), f.attname) for f in Order._meta.concrete_fields] == [
        (getattr(stored, f.attname), f.attname) for f in Order._meta.concrete_fields
    ]
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 1, statements
    assert statements[0].startswith("WITH claimed AS (UPDATE"), statements
    assert "FOR UPDATE" not in statements[0]
    assert OrderSaga.objects.get(pk=placed.pk).attempts == 2
    # Not the current step: nothing counted.
    assert orchestration._claim(placed.pk, SagaStep.CHARGE_PAYMENT) is None
    assert OrderSaga.objects.get(pk=placed.pk).attempts == 2


def test_a_forward_step_moves_on_and_records_its_success_in_one_statement(placed: Order) -> None:
    OrderSaga.objects.filter(pk=placed.pk).update(attempts=2, last_error="UpstreamError: boom")
    claim = orchestration._claim(placed.pk, SagaStep.VERIFY_USER)
    assert claim is not None
    result = {"customer_email": "alice@example.com", "customer_name": "Alice", "reservation_id": None}

    with CaptureQueriesContext(connection) as queries:
        next_step = orchestration._advance(claim, SagaStep.VERIFY_USER, result)

    assert next_step == SagaStep.RESERVE_STOCK
    assert len(queries.captured_queries) == 1, queries.captured_queries
    saga = OrderSaga.objects.get(pk=placed.pk)
    assert (saga.current_step, saga.attempts, saga.last_error) == (SagaStep.RESERVE_STOCK, 1, "")
    assert (saga.customer_email, saga.customer_name) == ("alice@example.com", "Alice")
    assert saga.reservation_id is None
    assert saga.stall_deadline > timezone.now()
    assert timeline(placed) == [("verify_user", "succeeded", None)]
    # The same success again (a duplicate task): the step is no longer current, nothing is written.
    assert orchestration._advance(claim, SagaStep.VERIFY_USER, result) is None
    assert OrderSaga.objects.get(pk=placed.pk).current_step == SagaStep.RESERVE_STOCK
    assert timeline(placed) == [("verify_user", "succeeded", None)]


def test_the_charge_confirms_the_order_in_one_statement_and_its_event(placed: Order) -> None:
    OrderSaga.objects.filter(pk=placed.pk).update(current_step=SagaStep.CHARGE_PAYMENT, **_contact(ALICE))
    claim = orchestration._claim(placed.pk, SagaStep.CHARGE_PAYMENT)
    assert claim is not None

    with CaptureQueriesContext(connection) as queries:
        next_step = orchestration._advance(claim, SagaStep.CHARGE_PAYMENT, {"payment_id": "p-9"})

    assert next_step is None
    written = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(written) == 2, written  # the confirmation, then the outbox row
    assert written[0].startswith("WITH saga AS (UPDATE"), written
    saga = OrderSaga.objects.get(pk=placed.pk)
    assert (saga.status, saga.current_step, saga.attempts, saga.last_error, saga.payment_id) == (
        SagaStatus.COMPLETED,
        None,
        0,
        "",
        "p-9",
    )
    placed.refresh_from_db()
    assert placed.status == OrderStatus.CONFIRMED
    assert [(c.from_status, c.to_status) for c in placed.status_history.all()] == [
        (None, "PENDING"),
        ("PENDING", "CONFIRMED"),
    ]
    assert timeline(placed) == [("charge_payment", "succeeded", None), ("confirm_order", "succeeded", None)]
    ((kind, key, payload),) = event_summary()
    assert (kind, key, payload["customer_email"]) == (
        "order.confirmed",
        str(placed.pk),
        _contact(ALICE)["customer_email"],
    )
    # The same success again (a duplicate task): the saga is over, nothing is written.
    assert orchestration._advance(claim, SagaStep.CHARGE_PAYMENT, {"payment_id": "p-9"}) is None
    assert len(event_summary()) == 1
    assert placed.status_history.count() == 2


def test_a_charge_for_an_order_cancelled_meanwhile_is_refused_and_writes_nothing(placed: Order) -> None:
    OrderSaga.objects.filter(pk=placed.pk).update(current_step=SagaStep.CHARGE_PAYMENT)
    claim = orchestration._claim(placed.pk, SagaStep.CHARGE_PAYMENT)
    assert claim is not None
    Order.objects.filter(pk=placed.pk).update(
        status=OrderStatus.CANCELLED, cancel_reason=CancelReason.SYSTEM_ERROR
    )

    with pytest.raises(ConflictError) as refused:
        orchestration._advance(claim, SagaStep.CHARGE_PAYMENT, {"payment_id": "p-9"})

    assert refused.value.details == {
        "order_id": placed.pk,
        "from_status": OrderStatus.CANCELLED,
        "to_status": OrderStatus.CONFIRMED,
    }
    saga = OrderSaga.objects.get(pk=placed.pk)
    assert (saga.status, saga.current_step, saga.payment_id) == (
        SagaStatus.RUNNING,
        SagaStep.CHARGE_PAYMENT,
        None,
    )
    assert timeline(placed) == []
    assert event_summary() == []
    assert placed.status_history.count() == 1


def test_a_step_result_naming_a_field_the_saga_does_not_store_is_refused(placed: Order) -> None:
    claim = orchestration._claim(placed.pk, SagaStep.VERIFY_USER)
    assert claim is not None

    with pytest.raises(ValueError, match="status"):
        orchestration._advance(claim, SagaStep.VERIFY_USER, {"status": "COMPLETED"})

    assert OrderSaga.objects.get(pk=placed.pk).current_step == SagaStep.VERIFY_USER
    assert timeline(placed) == []


def test_a_claim_past_the_last_attempt_fails_the_step_instead(placed: Order, settings: Any) -> None:
    settings.SAGA_STEP_MAX_ATTEMPTS = 3
    OrderSaga.objects.filter(pk=placed.pk).update(attempts=3, last_error="UpstreamError: boom")

    assert orchestration._claim(placed.pk, SagaStep.VERIFY_USER) is None

    saga = OrderSaga.objects.get(pk=placed.pk)
    assert (saga.status, saga.current_step) == (SagaStatus.COMPENSATING, SagaStep.CANCEL_ORDER)
    assert saga.last_error == "gave up after 3 attempts: UpstreamError: boom"


def test_default_retries_of_a_forward_step_outlast_three_minutes() -> None:
    # The least time the retries can take: every jitter at its minimum (half).
    floor = sum(
        min(django_settings.SAGA_RETRY_BACKOFF_MAX_S, django_settings.SAGA_RETRY_BACKOFF_S * 2 ** (n - 1)) / 2
        for n in range(1, django_settings.SAGA_STEP_MAX_ATTEMPTS)
    )
    assert floor >= 180
    assert django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > (
        django_settings.SAGA_RETRY_BACKOFF_MAX_S
    )
    for attempt in (1, 3, 10):
        ceiling = min(30.0, 2.0 ** (attempt - 1))
        assert all(ceiling / 2 <= orchestration.retry_delay(attempt) <= ceiling for _ in range(50))


def test_a_process_that_only_set_up_django_can_enqueue_every_step_by_name() -> None:
    """The web process never imports `orders.tasks` itself: the app registers them."""
    code = (
        "import django; django.setup()\n"
        "from celery import current_app\n"
        "from orders.models import SagaStep\n"
        "from orders.orchestration import STEP_TASK_NAME\n"
        "print(sorted(s.value for s in SagaStep if STEP_TASK_NAME.format(step=s) in current_app.tasks))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(sorted(s.value for s in SagaStep))
