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
