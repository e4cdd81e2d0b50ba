"""The choreographed saga: placing an order publishes order.created (or cancels
an inactive user's at once), and the handlers follow the other services' events.

Events are built and validated through the events package and handed to the
registered handler the way the consumer does: in a transaction with the inbox
row, skipped when that row exists (tests/test_consumer_process.py runs the real
`consume_events` process against Kafka).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from comptoir import ConflictError
from comptoir.events import Envelope, InboxMessage, current_version, handlers_for, validate_payload
from orders import choreography as choreographed_saga
from orders import handlers  # noqa: F401 - registers the handlers
from orders.models import CancelReason, Order, OrderSaga, OrderStatus, SagaMode, SagaStatus
from orders.tasks import expire_choreographed_orders

from .conftest import ALICE, INACTIVE_USER, Upstreams
from .support import event_summary, timeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("upstreams")]

GROUP = "order_service.events"
INSERT_INBOX = (
    'INSERT INTO comptoir_events_inboxmessage (consumer, event_id, event_type, topic, partition, "offset") '
    "VALUES (%s, %s, %s, 'test', 0, 0) ON CONFLICT DO NOTHING"
)


def build_event(event_type: str, order_id: int | str, **payload: Any) -> Envelope:
    """An event as another service would publish it (checked against its contract)."""
    body = {"order_id": str(order_id), **payload}
    version = current_version(event_type)
    validate_payload(event_type, version, body)
    return Envelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=version,
        occurred_at=timezone.now(),
        producer="product_service" if event_type.startswith("stock.") else "payment_service",
        aggregate_id=str(order_id),
        payload=body,
    )


def deliver(event: Envelope) -> bool:
    """Handles `event` as the consumer does: inbox row and effect in one
    transaction; False when the inbox says it was handled already."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(INSERT_INBOX, [GROUP, event.event_id, event.event_type])
            if cursor.rowcount != 1:
                return False
        handlers_for()[event.event_type](event)
    return True


def stock_reserved(order_id: int | str) -> Envelope:
    return build_event(
        "stock.reserved",
        order_id,
        reservation_id=f"r-{order_id}",
        lines=[{"product_id": "1", "quantity": 2}],
    )


def stock_rejected(order_id: int | str, reason: str = "insufficient_stock") -> Envelope:
    return build_event(
        "stock.rejected",
        order_id,
        reason=reason,
        unavailable=[{"product_id": "1", "requested": 2, "available": 1}]
        if reason == "insufficient_stock"
        else [],
    )


def payment_succeeded(order_id: int | str) -> Envelope:
    return build_event(
        "payment.succeeded", order_id, user_id=str(ALICE), payment_id="p-7", amount="25.00", currency="EUR"
    )


def payment_failed(order_id: int | str, reason: str = "insufficient_funds") -> Envelope:
    return build_event(
        "payment.failed", order_id, user_id=str(ALICE), amount="25.00", currency="EUR", reason=reason
    )


@pytest.fixture
def choreography(settings: Any) -> None:
    settings.SAGA_MODE = "choreography"


@pytest.fixture
def pending(choreography: None, place_order: Callable[..., Any]) -> Order:
    """A choreographed order just placed: PENDING, order.created in the outbox."""
    response = place_order([(1, 2)])
    assert response.status_code == 202, response.json()
    return Order.objects.get(pk=response.json()["id"])


def _contact(user_id: int) -> dict[str, str]:
    """The customer's contact as the user_service stub gives it, carried by the mailed events."""
    return {"customer_email": f"user{user_id}@comptoir.dev", "customer_name": f"User {user_id}"}


def _cancelled(order: Order, reason: str, **ids: str) -> tuple[str, str, dict[str, object]]:
    payload: dict[str, object] = {"order_id": str(order.pk), "user_id": str(order.user_id), "reason": reason}
    payload.update(ids)
    if reason != "user_inactive":  # a user who cannot order left no contact
        payload.update(_contact(order.user_id))
    return ("order.cancelled", str(order.pk), payload)


def _created(order: Order) -> tuple[str, str, dict[str, object]]:
    return (
        "order.created",
        str(order.pk),
        {
            "order_id": str(order.pk),
            "user_id": str(ALICE),
            "lines": [{"product_id": "1", "quantity": 2, "unit_price": "12.50"}],
            "amount": "25.00",
            "currency": "EUR",
        },
    )


# ------------------------------------------------------------------ placing


def test_placing_verifies_the_user_and_publishes_order_created(
    choreography: None, place_order: Callable[..., Any], upstreams: Upstreams, alice_headers: dict[str, str]
) -> None:
    response = place_order([(1, 2)], headers={**alice_headers, "X-Request-ID": "req-choreo-7"})

    assert response.status_code == 202
    body = response.json()
    order = Order.objects.get(pk=body["id"])
    assert (body["status"], body["saga_mode"], body["cancel_reason"]) == ("PENDING", "choreography", None)
    assert [(e["step"], e["status"], e["error"]) for e in body["timeline"]] == [
        ("verify_user", "succeeded", None)
    ]
    assert upstreams.operations() == ["user"]  # the rest is the other services' part
    # Checked beside the quote, on another thread, still as part of this request.
    assert upstreams.users.calls("user")[0].headers["X-Request-ID"] == "req-choreo-7"
    assert event_summary() == [_created(order)]
    saga = OrderSaga.objects.get(pk=order.pk)
    assert (saga.status, saga.current_step) == (SagaStatus.RUNNING, "reserve_stock")


@pytest.mark.parametrize("user_id", [INACTIVE_USER, 77], ids=["inactive", "unknown"])
def test_an_inactive_or_unknown_user_gets_a_cancelled_order_and_order_cancelled(
    choreography: None, place_order: Callable[..., Any], tokens: Any, user_id: int
) -> None:
    response = place_order([(1, 2)], headers=tokens.header(tokens.user(user_id)))

    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["cancel_reason"], body["saga_mode"]) == (
        "CANCELLED",
        "user_inactive",
        "choreography",
    )
    order = Order.objects.get(pk=body["id"])
    assert timeline(order) == [
        ("verify_user", "failed", "user_inactive"),
        ("cancel_order", "succeeded", None),
    ]
    assert event_summary() == [_cancelled(order, "user_inactive")]  # and no order.created
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in body["status_history"]] == [
        (None, "PENDING", None),
        ("PENDING", "CANCELLED", "user_inactive"),
    ]


def test_user_service_down_refuses_the_order_and_writes_nothing(
    choreography: None, place_order: Callable[..., Any], settings: Any, closed_port_url: str
) -> None:
    settings.USER_SERVICE_URL = closed_port_url

    response = place_order([(1, 2)])

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert not Order.objects.exists()
    assert event_summary() == []


# ------------------------------------------------------------------ handlers


def test_stock_reserved_only_records_the_step(pending: Order) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert deliver(stock_reserved(pending.pk))
    # The saga's UPDATE and the timeline's INSERT are one statement.
    on_orders = [q["sql"] for q in queries.captured_queries if "orders_" in q["sql"]]
    assert [sql[:40] for sql in on_orders] == ["WITH saga AS (UPDATE orders_ordersaga s "]

    pending.refresh_from_db()
    assert pending.status == OrderStatus.PENDING
    assert timeline(pending) == [("verify_user", "succeeded", None), ("reserve_stock", "succeeded", None)]
    saga = OrderSaga.objects.get(pk=pending.pk)
    assert (saga.reservation_id, saga.current_step) == (f"r-{pending.pk}", "charge_payment")
    assert event_summary() == [_created(pending)]


@pytest.mark.parametrize(
    ("reason", "cancel_reason"),
    [
        ("insufficient_stock", CancelReason.INSUFFICIENT_STOCK),
        ("price_changed", CancelReason.PRICE_CHANGED),
        ("a reason of a later version", CancelReason.INSUFFICIENT_STOCK),
    ],
)
def test_stock_rejected_cancels_for_its_reason(
    pending: Order, reason: str, cancel_reason: CancelReason
) -> None:
    assert deliver(stock_rejected(pending.pk, reason))

    pending.refresh_from_db()
    assert (pending.status, pending.cancel_reason) == (OrderStatus.CANCELLED, cancel_reason)
    assert timeline(pending) == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "failed", cancel_reason.value),
        ("cancel_order", "succeeded", None),
    ]
    assert event_summary() == [_created(pending), _cancelled(pending, cancel_reason.value)]


@pytest.mark.parametrize(
    ("reason", "cancel_reason"),
    [("insufficient_funds", "insufficient_funds"), ("card network down", "payment_failed")],
)
def test_payment_failed_cancels_with_the_reservation_to_release(
    pending: Order, reason: str, cancel_reason: str
) -> None:
    deliver(stock_reserved(pending.pk))

    assert deliver(payment_failed(pending.pk, reason))

    pending.refresh_from_db()
    assert (pending.status, pending.cancel_reason) == (OrderStatus.CANCELLED, cancel_reason)
    assert timeline(pending)[1:] == [
        ("reserve_stock", "succeeded", None),
        ("charge_payment", "failed", cancel_reason),
        ("cancel_order", "succeeded", None),
    ]
    assert event_summary() == [
        _created(pending),
        _cancelled(pending, cancel_reason, reservation_id=f"r-{pending.pk}"),
    ]


def test_payment_succeeded_confirms_and_publishes_order_confirmed(pending: Order) -> None:
    with CaptureQueriesContext(connection) as queries:
        deliver(stock_reserved(pending.pk))
        assert deliver(payment_succeeded(pending.pk))
    # One savepoint per delivery: deliver's transaction, inside the test's. The
    # saga's functions take none of their own in the consumer's transaction.
    assert len([q["sql"] for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]) == 2

    pending.refresh_from_db()
    assert (pending.status, pending.cancel_reason) == (OrderStatus.CONFIRMED, None)
    assert timeline(pending) == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "succeeded", None),
        ("charge_payment", "succeeded", None),
        ("confirm_order", "succeeded", None),
    ]
    confirmed = {
        "order_id": str(pending.pk),
        "user_id": str(ALICE),
        "amount": "25.00",
        "currency": "EUR",
        **_contact(ALICE),
    }
    assert event_summary() == [_created(pending), ("order.confirmed", str(pending.pk), confirmed)]
    saga = OrderSaga.objects.get(pk=pending.pk)
    assert (saga.status, saga.payment_id, saga.current_step) == (SagaStatus.COMPLETED, "p-7", None)


@pytest.mark.django_db(transaction=True)
def test_a_confirmation_meeting_an_order_moved_meanwhile_is_refused_whole(pending: Order) -> None:
    """The payment's statement updates the saga's row, then waits on the order's,
    which another transaction is cancelling; once that commits there is no
    PENDING order to move: refused, and the saga, timeline and outbox untouched."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    other.set_autocommit(False)
    with other.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET status = %s, cancel_reason = %s WHERE id = %s",
            [OrderStatus.CANCELLED, CancelReason.SYSTEM_ERROR, pending.pk],
        )
    other.inc_thread_sharing()  # committed from the timer's thread
    committer = threading.Timer(0.5, other.commit)
    committer.start()
    try:
        with pytest.raises(ConflictError) as refused:
            choreographed_saga.payment_succeeded(order_id=str(pending.pk), payment_id="p-7")
    finally:
        committer.join()
        other.dec_thread_sharing()
        other.close()

    assert refused.value.code == "invalid_status_transition"
    saga = OrderSaga.objects.get(pk=pending.pk)
    assert (saga.status, saga.payment_id) == (SagaStatus.RUNNING, None)
    assert timeline(pending) == [("verify_user", "succeeded", None)]
    assert [e[0] for e in event_summary()] == ["order.created"]
    assert list(pending.status_history.values_list("to_status", flat=True)) == [OrderStatus.PENDING]


def test_a_payment_overtaking_its_stock_event_still_tells_the_whole_story(pending: Order) -> None:
    deliver(payment_succeeded(pending.pk))
    deliver(stock_reserved(pending.pk))  # late: the order is settled

    pending.refresh_from_db()
    assert pending.status == OrderStatus.CONFIRMED
    assert [step for step, _, _ in timeline(pending)] == [
        "verify_user",
        "reserve_stock",
        "charge_payment",
        "confirm_order",
    ]
    assert OrderSaga.objects.get(pk=pending.pk).reservation_id is None


def test_the_same_event_delivered_twice_has_one_effect(pending: Order) -> None:
    event = payment_succeeded(pending.pk)

    assert deliver(event)
    assert not deliver(event)

    assert [e[0] for e in event_summary()] == ["order.created", "order.confirmed"]
    assert pending.status_history.count() == 2
    assert InboxMessage.objects.filter(event_id=event.event_id).count() == 1


@pytest.mark.parametrize("settled", ["confirmed", "cancelled"])
@pytest.mark.parametrize(
    "event", [stock_reserved, stock_rejected, payment_succeeded, payment_failed], ids=lambda f: f.__name__
)
def test_an_event_about_a_settled_order_changes_nothing(
    pending: Order, settled: str, event: Callable[[int], Envelope]
) -> None:
    deliver(payment_succeeded(pending.pk) if settled == "confirmed" else stock_rejected(pending.pk))
    pending.refresh_from_db()
    before = (pending.status, pending.cancel_reason, timeline(pending), event_summary())

    assert deliver(event(pending.pk))  # handled (a no-op), not failed

    pending.refresh_from_db()
    assert (pending.status, pending.cancel_reason, timeline(pending), event_summary()) == before


def test_events_about_orchestrated_or_unknown_orders_change_nothing(
    settings: Any, place_order: Callable[..., Any]
) -> None:
    settings.SAGA_MODE = "orchestration"
    orchestrated = Order.objects.get(pk=place_order([(1, 2)]).json()["id"])

    for event in (
        stock_rejected(orchestrated.pk),
        stock_reserved(orchestrated.pk),
        payment_succeeded(orchestrated.pk),
        stock_reserved(999999),
        payment_failed("not-a-number"),
    ):
        assert deliver(event)

    orchestrated.refresh_from_db()
    assert (orchestrated.status, orchestrated.saga_mode) == (OrderStatus.PENDING, SagaMode.ORCHESTRATION)
    assert timeline(orchestrated) == []
    assert event_summary() == []


def test_compensations_made_elsewhere_show_on_the_timeline(pending: Order) -> None:
    deliver(stock_reserved(pending.pk))
    deliver(payment_failed(pending.pk))

    released = build_event(
        "stock.released", pending.pk, reservation_id=f"r-{pending.pk}", reason="order cancelled"
    )
    assert deliver(released)
    assert deliver(build_event("stock.released", pending.pk, reservation_id="r", reason="again"))

    assert timeline(pending)[-2:] == [
        ("cancel_order", "succeeded", None),
        ("release_stock", "compensated", None),
    ]
    assert len(event_summary()) == 2


def test_the_detail_shows_the_choreographed_timeline(
    pending: Order, client: Any, alice_headers: dict[str, str]
) -> None:
    deliver(stock_reserved(pending.pk))
    deliver(payment_failed(pending.pk))

    body = client.get(f"/api/orders/{pending.pk}/", headers=alice_headers).json()

    assert (body["status"], body["cancel_reason"], body["saga_mode"]) == (
        "CANCELLED",
        "insufficient_funds",
        "choreography",
    )
    assert [(e["step"], e["status"], e["error"]) for e in body["timeline"]] == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "succeeded", None),
        ("charge_payment", "failed", "insufficient_funds"),
        ("cancel_order", "succeeded", None),
    ]
    assert all(entry["at"] for entry in body["timeline"])


# ------------------------------------------------------------------ the deadline


def test_an_order_past_its_deadline_is_cancelled_and_order_cancelled_names_what_to_undo(
    pending: Order,
    place_order: Callable[..., Any],
    make_order: Callable[..., Order],
    settings: Any,
    celery_eager: None,
) -> None:
    settings.CHOREOGRAPHY_DEADLINE_S = 60
    # Reserved and charged, but payment.succeeded never came (parked in a dead-letter topic).
    assert deliver(stock_reserved(pending.pk))
    Order.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    fresh = Order.objects.get(pk=place_order([(1, 2)]).json()["id"])
    orchestrated = make_order()
    Order.objects.filter(pk=orchestrated.pk).update(
        saga_mode=SagaMode.ORCHESTRATION, created_at=timezone.now() - timedelta(hours=1)
    )
    OrderSaga.objects.create(order=orchestrated, current_step="charge_payment")
    events_before = event_summary()

    assert expire_choreographed_orders.delay().get() == [pending.pk]

    pending.refresh_from_db()
    assert (pending.status, pending.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.SYSTEM_ERROR)
    assert timeline(pending) == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "succeeded", None),
        ("charge_payment", "failed", "system_error"),
        ("cancel_order", "succeeded", None),
    ]
    assert event_summary() == [
        *events_before,
        _cancelled(pending, "system_error", reservation_id=f"r-{pending.pk}"),
    ]
    saga = OrderSaga.objects.get(pk=pending.pk)
    assert (saga.status, saga.current_step, saga.last_error) == (
        SagaStatus.COMPENSATED,
        None,
        "deadline passed at charge_payment",
    )
    assert Order.objects.get(pk=fresh.pk).status == OrderStatus.PENDING
    assert Order.objects.get(pk=orchestrated.pk).status == OrderStatus.PENDING
    # A late payment.succeeded changes nothing: payment_service refunds on order.cancelled.
    assert deliver(payment_succeeded(pending.pk))
    assert Order.objects.get(pk=pending.pk).status == OrderStatus.CANCELLED
    assert expire_choreographed_orders.delay().get() == []


def test_the_choreography_deadline_must_stay_below_the_auditors() -> None:
    assert 0 < django_settings.CHOREOGRAPHY_DEADLINE_S < django_settings.SAGA_DEADLINE_S
    assert django_settings.CELERY_BEAT_SCHEDULE["expire-choreographed-orders"]["task"] == (
        "orders.expire_choreographed_orders"
    )
