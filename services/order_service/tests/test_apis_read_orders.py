"""GET /api/orders/ and /api/orders/{id}/, and who may call each order route."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from comptoir.testing import TokenFactory
from orders.models import CancelReason, Order, OrderStatus

from .conftest import ALICE, BOB, ProductServiceStub

pytestmark = pytest.mark.django_db

MakeOrder = Callable[..., Order]


def _error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_my_orders_are_listed_newest_first_without_anyone_elses(
    client: Client, alice_headers: dict[str, str], make_order: MakeOrder
) -> None:
    oldest = make_order(lines=[(1, 1)])
    middle = make_order(lines=[(2, 1)], status=OrderStatus.CONFIRMED)
    newest = make_order(lines=[(3, 4)], status=OrderStatus.CANCELLED, cancel_reason="insufficient_stock")
    make_order(user_id=BOB)
    now = timezone.now()
    for age, order in ((3, oldest), (2, middle), (1, newest)):
        Order.objects.filter(pk=order.pk).update(created_at=now - timedelta(minutes=age))

    response = client.get("/api/orders/", headers=alice_headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (3, None, None)
    assert [order["id"] for order in body["results"]] == [newest.pk, middle.pk, oldest.pk]
    assert body["results"][0] == {
        "id": newest.pk,
        "status": "CANCELLED",
        "cancel_reason": "insufficient_stock",
        "total": "0.40",
        "currency": "EUR",
        "lines": [
            {
                "product_id": 3,
                "product_name": "Paper filter",
                "quantity": 4,
                "unit_price": "0.10",
                "line_total": "0.40",
            }
        ],
        "created_at": body["results"][0]["created_at"],
        "updated_at": body["results"][0]["updated_at"],
    }
    assert [order["status"] for order in body["results"]] == ["CANCELLED", "CONFIRMED", "PENDING"]


def test_my_orders_are_paginated(client: Client, alice_headers: dict[str, str]) -> None:
    Order.objects.bulk_create(Order(user_id=ALICE, total="1.00", currency="EUR") for _ in range(21))

    first = client.get("/api/orders/", headers=alice_headers).json()
    second = client.get("/api/orders/?page=2", headers=alice_headers).json()

    assert (first["count"], len(first["results"]), first["next"]) == (
        21,
        20,
        "http://testserver/api/orders/?page=2",
    )
    assert (len(second["results"]), second["next"]) == (1, None)
    assert {o["id"] for o in first["results"]} | {o["id"] for o in second["results"]} == set(
        Order.objects.values_list("id", flat=True)
    )


def test_no_orders_is_an_empty_page(
    client: Client, bob_headers: dict[str, str], make_order: MakeOrder
) -> None:
    make_order(user_id=ALICE)

    response = client.get("/api/orders/", headers=bob_headers)

    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_my_order_comes_with_its_lines_and_status_history(
    client: Client, alice_headers: dict[str, str], make_order: MakeOrder
) -> None:
    order = make_order(
        lines=[(1, 2), (2, 1)], status=OrderStatus.CANCELLED, cancel_reason="insufficient_funds"
    )

    response = client.get(f"/api/orders/{order.pk}/", headers=alice_headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["cancel_reason"], body["total"]) == (
        order.pk,
        "CANCELLED",
        "insufficient_funds",
        "114.99",
    )
    assert [(line["product_id"], line["quantity"], line["line_total"]) for line in body["lines"]] == [
        (1, 2, "25.00"),
        (2, 1, "89.99"),
    ]
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in body["status_history"]] == [
        (None, "PENDING", None),
        ("PENDING", "CANCELLED", "insufficient_funds"),
    ]
    assert set(body["status_history"][0]) == {"from_status", "to_status", "reason", "at"}


@pytest.mark.parametrize("order_id", [999_999, 2**63, 10**30])
def test_an_order_that_does_not_exist_is_404(
    client: Client, alice_headers: dict[str, str], order_id: int
) -> None:
    response = client.get(f"/api/orders/{order_id}/", headers=alice_headers)

    assert response.status_code == 404
    assert _error_code(response) == "order_not_found"


# --- authorization matrix ---------------------------------------------------------------


@pytest.fixture
def alices_order(make_order: MakeOrder) -> Order:
    return make_order(user_id=ALICE, lines=[(1, 1)])


def _call(client: Client, route: str, order: Order, headers: dict[str, str]) -> Any:
    if route == "list":
        return client.get("/api/orders/", headers=headers)
    if route == "create":
        return client.post(
            "/api/orders/",
            {"lines": [{"product_id": 1, "quantity": 1}]},
            content_type="application/json",
            headers=headers,
        )
    return client.get(f"/api/orders/{order.pk}/", headers=headers)


ROUTES = ["list", "create", "detail"]


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_callers_are_401(
    client: Client, alices_order: Order, product_service: ProductServiceStub, route: str
) -> None:
    response = _call(client, route, alices_order, {})

    assert response.status_code == 401
    assert _error_code(response) == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="comptoir"'
    assert Order.objects.count() == 1
    assert product_service.quotes() == []


@pytest.mark.parametrize("route", ROUTES)
def test_a_forged_token_is_401(
    client: Client, alices_order: Order, tokens: TokenFactory, product_service: ProductServiceStub, route: str
) -> None:
    forged = TokenFactory().user(ALICE)  # signed by a key the service does not trust

    response = _call(client, route, alices_order, tokens.header(forged))

    assert response.status_code == 401
    assert _error_code(response) == "authentication_failed"
    assert Order.objects.count() == 1
    assert product_service.quotes() == []


@pytest.mark.parametrize("route", ROUTES)
def test_a_service_token_is_403_on_user_routes(
    client: Client, alices_order: Order, tokens: TokenFactory, product_service: ProductServiceStub, route: str
) -> None:
    response = _call(client, route, alices_order, tokens.header(tokens.service("payment_service")))

    assert response.status_code == 403
    assert _error_code(response) == "permission_denied"
    assert Order.objects.count() == 1
    assert product_service.quotes() == []


@pytest.mark.parametrize("is_staff", [False, True], ids=["other-user", "staff"])
def test_another_users_order_is_404_and_unchanged(
    client: Client, alices_order: Order, tokens: TokenFactory, is_staff: bool
) -> None:
    before = Order.objects.values().get(pk=alices_order.pk)
    headers = tokens.header(tokens.user(BOB, is_staff=is_staff))

    detail = client.get(f"/api/orders/{alices_order.pk}/", headers=headers)
    listing = client.get("/api/orders/", headers=headers)

    assert detail.status_code == 404
    assert _error_code(detail) == "order_not_found"
    assert listing.json()["count"] == 0
    assert Order.objects.values().get(pk=alices_order.pk) == before


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_orders_cannot_be_changed_or_deleted_through_the_api(
    client: Client, alice_headers: dict[str, str], alices_order: Order, method: str
) -> None:
    before = Order.objects.values().get(pk=alices_order.pk)

    response = getattr(client, method)(
        f"/api/orders/{alices_order.pk}/",
        {"status": "CONFIRMED", "cancel_reason": CancelReason.SYSTEM_ERROR},
        content_type="application/json",
        headers=alice_headers,
    )

    assert response.status_code == 405
    assert _error_code(response) == "method_not_allowed"
    assert Order.objects.values().get(pk=alices_order.pk) == before
    assert alices_order.status_history.count() == 1
