"""The admin shows orders with their lines and history, and edits none of it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from orders.models import Order, OrderStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "admin-pass-2026"))
    return client


def test_orders_are_listed_and_shown_read_only(
    admin_client_: Client, make_order: Callable[..., Order]
) -> None:
    order = make_order(lines=[(1, 2)])

    listing = admin_client_.get("/admin/orders/order/")
    page = admin_client_.get(f"/admin/orders/order/{order.pk}/change/")

    assert listing.status_code == 200
    assert page.status_code == 200
    content = page.content.decode()
    assert "Espresso cup" in content
    assert 'name="status"' not in content  # no editable field
    assert admin_client_.get("/admin/orders/order/add/").status_code == 403


@pytest.mark.parametrize("term", ["key-1", "42"])
def test_orders_can_be_searched_by_id_owner_or_key(
    admin_client_: Client, make_order: Callable[..., Order], term: str
) -> None:
    make_order()

    assert admin_client_.get("/admin/orders/order/", {"q": term}).status_code == 200


def test_the_admin_cannot_change_an_order(admin_client_: Client, make_order: Callable[..., Order]) -> None:
    order = make_order()

    response = admin_client_.post(f"/admin/orders/order/{order.pk}/change/", {"status": "CONFIRMED"})

    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_sagas_are_searchable_by_order_id_and_read_only(
    admin_client_: Client, make_order: Callable[..., Order]
) -> None:
    from orders.models import OrderSaga, SagaStatus

    wanted, other = make_order(), make_order()
    OrderSaga.objects.create(order=wanted, status=SagaStatus.RUNNING, reservation_id="res-1")
    OrderSaga.objects.create(order=other, status=SagaStatus.RUNNING)

    found = admin_client_.get("/admin/orders/ordersaga/", {"q": str(wanted.pk)})
    by_reservation = admin_client_.get("/admin/orders/ordersaga/", {"q": "res-1"})
    change = admin_client_.post(f"/admin/orders/ordersaga/{wanted.pk}/change/", {"status": "COMPENSATED"})

    assert found.status_code == 200
    assert f"/admin/orders/ordersaga/{wanted.pk}/change/" in found.content.decode()
    assert f"/admin/orders/ordersaga/{other.pk}/change/" not in found.content.decode()
    assert f"/admin/orders/ordersaga/{wanted.pk}/change/" in by_reservation.content.decode()
    assert change.status_code == 403
    assert OrderSaga.objects.get(pk=wanted.pk).status == SagaStatus.RUNNING


def test_the_outbox_and_inbox_are_listed_and_searchable(admin_client_: Client) -> None:
    import uuid

    from comptoir.events.models import InboxMessage, OutboxMessage

    event_id = uuid.uuid4()
    OutboxMessage.objects.create(
        event_id=event_id, event_type="order.created", topic="orders.order-created", key="4242", envelope="{}"
    )
    InboxMessage.objects.create(
        consumer="order_service.saga",
        event_id=event_id,
        event_type="stock.reserved",
        topic="stock.stock-reserved",
        partition=0,
        offset=7,
    )

    outbox = admin_client_.get("/admin/comptoir_events/outboxmessage/", {"q": "4242"})
    nothing = admin_client_.get("/admin/comptoir_events/outboxmessage/", {"q": "4243"})
    pending = admin_client_.get("/admin/comptoir_events/outboxmessage/", {"published": "no"})
    inbox = admin_client_.get("/admin/comptoir_events/inboxentry/", {"q": str(event_id)})

    assert outbox.status_code == 200
    assert '<td class="field-key">4242</td>' in outbox.content.decode()
    assert '<td class="field-key">4242</td>' not in nothing.content.decode()
    assert '<td class="field-key">4242</td>' in pending.content.decode()
    assert inbox.status_code == 200
    assert "order_service.saga" in inbox.content.decode()
    assert admin_client_.get("/admin/comptoir_events/outboxmessage/add/").status_code == 403
