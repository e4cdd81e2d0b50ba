"""orders.services: the status machine and the guards of order_create."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from comptoir import ApplicationError, ConflictError, NotFoundError
from orders import services
from orders.models import (
    CancelReason,
    Order,
    OrderLine,
    OrderSaga,
    OrderStatus,
    OrderStatusChange,
    SagaTimelineEntry,
)
from orders.product_quotes import RequestedLine
from orders.selectors import saga_backlog
from orders.services import order_create, order_transition

from .conftest import ALICE, ProductServiceStub

pytestmark = pytest.mark.django_db

MakeOrder = Callable[..., Order]


def _history(order: Order) -> list[tuple[str | None, str, str | None]]:
    return list(order.status_history.values_list("from_status", "to_status", "reason"))


def test_a_pending_order_can_be_confirmed(make_order: MakeOrder) -> None:
    order = make_order()

    confirmed = order_transition(order_id=order.pk, to_status=OrderStatus.CONFIRMED)

    assert confirmed.status == OrderStatus.CONFIRMED
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CONFIRMED, None)
    assert _history(order) == [(None, "PENDING", None), ("PENDING", "CONFIRMED", None)]


def test_a_pending_order_can_be_cancelled_with_a_reason(make_order: MakeOrder) -> None:
    order = make_order()

    order_transition(
        order_id=order.pk, to_status=OrderStatus.CANCELLED, reason=CancelReason.INSUFFICIENT_STOCK
    )

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "insufficient_stock")
    assert _history(order) == [(None, "PENDING", None), ("PENDING", "CANCELLED", "insufficient_stock")]


@pytest.mark.parametrize("reason", [None, "", "because", "INSUFFICIENT_STOCK"])
def test_a_cancellation_needs_a_known_reason_code(make_order: MakeOrder, reason: str | None) -> None:
    order = make_order()

    with pytest.raises(ApplicationError) as caught:
        order_transition(order_id=order.pk, to_status=OrderStatus.CANCELLED, reason=reason)

    assert (caught.value.code, caught.value.status_code) == ("invalid_cancel_reason", 400)
    assert caught.value.details["allowed"] == [
        "user_inactive",
        "insufficient_stock",
        "price_changed",
        "insufficient_funds",
        "payment_failed",
        "system_error",
    ]
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.PENDING, None)
    assert _history(order) == [(None, "PENDING", None)]


@pytest.mark.parametrize(
    ("status", "cancel_reason", "to_status"),
    [
        (OrderStatus.CONFIRMED, None, OrderStatus.CANCELLED),
        (OrderStatus.CONFIRMED, None, OrderStatus.CONFIRMED),
        (OrderStatus.CONFIRMED, None, OrderStatus.PENDING),
        (OrderStatus.CANCELLED, "insufficient_funds", OrderStatus.CONFIRMED),
        (OrderStatus.CANCELLED, "insufficient_funds", OrderStatus.CANCELLED),
        (OrderStatus.CANCELLED, "insufficient_funds", OrderStatus.PENDING),
        (OrderStatus.PENDING, None, OrderStatus.PENDING),
        (OrderStatus.PENDING, None, "SHIPPED"),
    ],
)
def test_every_other_move_is_refused_and_changes_nothing(
    make_order: MakeOrder, status: str, cancel_reason: str | None, to_status: str
) -> None:
    order = make_order(status=status, cancel_reason=cancel_reason)
    history_before = _history(order)

    with pytest.raises(ConflictError) as caught:
        order_transition(order_id=order.pk, to_status=to_status, reason=CancelReason.SYSTEM_ERROR)

    assert (caught.value.code, caught.value.status_code) == ("invalid_status_transition", 409)
    assert caught.value.details == {"order_id": order.pk, "from_status": status, "to_status": to_status}
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (status, cancel_reason)
    assert _history(order) == history_before


@pytest.mark.parametrize(
    ("to_status", "reason"),
    [(OrderStatus.CONFIRMED, None), (OrderStatus.CANCELLED, CancelReason.INSUFFICIENT_FUNDS)],
)
def test_a_known_copy_moves_the_order_without_reading_it_again(
    make_order: MakeOrder, to_status: str, reason: str | None
) -> None:
    order = make_order()
    known = Order.objects.get(pk=order.pk)

    with CaptureQueriesContext(connection) as queries:
        moved = order_transition(order_id=order.pk, to_status=to_status, reason=reason, known=known)

    assert moved is known
    assert (moved.status, moved.cancel_reason) == (to_status, reason)
    statements = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in statements if sql.startswith("SELECT") and "orders_order" in sql], statements
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (to_status, reason)
    assert order.updated_at == moved.updated_at
    assert _history(order) == [(None, "PENDING", None), ("PENDING", to_status, reason)]


def test_a_stale_known_copy_gets_the_refusal_of_the_stored_status(make_order: MakeOrder) -> None:
    order = make_order()
    known = Order.objects.get(pk=order.pk)
    order_transition(order_id=order.pk, to_status=OrderStatus.CANCELLED, reason=CancelReason.SYSTEM_ERROR)

    with pytest.raises(ConflictError) as caught:
        order_transition(order_id=order.pk, to_status=OrderStatus.CONFIRMED, known=known)

    assert caught.value.details == {
        "order_id": order.pk,
        "from_status": OrderStatus.CANCELLED,
        "to_status": OrderStatus.CONFIRMED,
    }
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "system_error")
    assert len(_history(order)) == 2


def test_a_known_copy_does_not_excuse_an_unknown_cancel_reason(make_order: MakeOrder) -> None:
    order = make_order()

    with pytest.raises(ApplicationError) as caught:
        order_transition(order_id=order.pk, to_status=OrderStatus.CANCELLED, reason="because", known=order)

    assert caught.value.code == "invalid_cancel_reason"
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING


@pytest.mark.parametrize("order_id", [424242, 0, -1, 2**63])
def test_moving_an_order_that_does_not_exist_is_not_found(order_id: int) -> None:
    with pytest.raises(NotFoundError) as caught:
        order_transition(order_id=order_id, to_status=OrderStatus.CONFIRMED)

    assert caught.value.code == "order_not_found"


def test_a_reason_longer_than_its_column_is_refused(make_order: MakeOrder) -> None:
    order = make_order()

    with pytest.raises(ApplicationError) as caught:
        order_transition(order_id=order.pk, to_status=OrderStatus.CONFIRMED, reason="r" * 65)

    assert caught.value.code == "validation_error"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_racing_confirm_and_cancel_settle_on_one(make_order: MakeOrder) -> None:
    order = make_order()
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def move(to_status: str, reason: str | None) -> None:
        try:
            start.wait(timeout=10)
            order_transition(order_id=order.pk, to_status=to_status, reason=reason)
            outcomes[to_status] = "moved"
        except ConflictError as error:
            outcomes[to_status] = error.code
        finally:
            connection.close()

    threads = [
        threading.Thread(target=move, args=(OrderStatus.CONFIRMED, None)),
        threading.Thread(target=move, args=(OrderStatus.CANCELLED, CancelReason.PAYMENT_FAILED)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["invalid_status_transition", "moved"]
    winner = next(status for status, outcome in outcomes.items() if outcome == "moved")
    order.refresh_from_db()
    assert order.status == winner
    assert OrderStatusChange.objects.filter(order=order).count() == 2


def test_the_database_refuses_a_cancelled_order_without_a_reason(make_order: MakeOrder) -> None:
    order = make_order()

    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_the_database_refuses_a_line_total_that_is_not_price_times_quantity(make_order: MakeOrder) -> None:
    order = make_order(lines=[(1, 2)])

    with pytest.raises(IntegrityError), transaction.atomic():
        order.lines.update(line_total=Decimal("1.00"))

    assert order.lines.get().line_total == Decimal("25.00")


def test_order_create_refuses_a_repeated_product_before_quoting(product_service: ProductServiceStub) -> None:
    with pytest.raises(ApplicationError) as caught:
        order_create(
            user_id=ALICE,
            lines=[RequestedLine(product_id=3, quantity=1), RequestedLine(product_id=3, quantity=2)],
        )

    assert (caught.value.code, caught.value.details) == ("duplicate_product", {"product_ids": [3]})
    assert product_service.quotes() == []
    assert Order.objects.count() == 0


def test_order_create_reports_whether_it_placed_the_order(product_service: ProductServiceStub) -> None:
    lines = [RequestedLine(product_id=1, quantity=1)]

    first = order_create(user_id=ALICE, lines=lines, idempotency_key="svc-key")
    again = order_create(user_id=ALICE, lines=lines, idempotency_key="svc-key")

    assert (first.created, again.created) == (True, False)
    assert first.order.pk == again.order.pk
    assert first.order.total == Decimal("12.50")


@pytest.mark.parametrize(
    "model", [Order, OrderLine, OrderStatusChange, OrderSaga, SagaTimelineEntry], ids=lambda m: m.__name__
)
def test_the_placing_statement_writes_every_column(
    model: type[Order | OrderLine | OrderStatusChange | OrderSaga | SagaTimelineEntry],
) -> None:
    """It names its columns: one added to the order, its lines, its history, its saga
    or the saga's timeline must be written there too (all but a generated id)."""
    table = re.escape(connection.ops.quote_name(model._meta.db_table))
    written = re.search(rf"INSERT INTO {table} \(([^)]*)\)", services._PLACE)
    assert written is not None
    columns = [
        str(field.column)
        for field in model._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField))
    ]
    assert sorted(name.strip() for name in written.group(1).split(",")) == sorted(columns)


def _saga_count(mode: str, status: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "comptoir_saga_finished_total",
        {"service": "order_service", "mode": mode, "status": status, "reason": reason},
    )
    return value or 0.0


def test_a_settled_order_is_counted_once_its_state_is_committed(
    make_order: MakeOrder, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    order = make_order()
    before = _saga_count("orchestration", "CANCELLED", "insufficient_funds")
    with django_capture_on_commit_callbacks() as callbacks:
        order_transition(
            order_id=order.pk, to_status=OrderStatus.CANCELLED, reason=CancelReason.INSUFFICIENT_FUNDS
        )
    assert _saga_count("orchestration", "CANCELLED", "insufficient_funds") == before  # not before the commit
    for callback in callbacks:
        callback()
    assert _saga_count("orchestration", "CANCELLED", "insufficient_funds") == before + 1


def test_the_saga_backlog_reports_pending_orders_per_mode(make_order: MakeOrder) -> None:
    make_order()
    make_order()
    [(mode, pending, oldest_age_s)] = saga_backlog()
    assert (mode, pending) == ("orchestration", 2)
    assert oldest_age_s >= 0
