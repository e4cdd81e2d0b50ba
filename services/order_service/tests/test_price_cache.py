"""Kept prices (ORDER_PRICE_CACHE_S): an order of products quoted recently asks
product_service for no quote, and its reservation names the prices it was placed
at, so a price changed in between cancels the order (price_changed) before any
money moves."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from orders.models import CancelReason, Order, OrderStatus

from .conftest import Upstreams
from .support import timeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("upstreams")]


@pytest.fixture
def kept_prices(settings: Any) -> None:
    settings.ORDER_PRICE_CACHE_S = 30


def test_an_order_of_recently_quoted_products_asks_for_no_quote(
    kept_prices: None, place_order: Callable[..., Any], upstreams: Upstreams
) -> None:
    first = place_order([(1, 2), (3, 1)])
    second = place_order([(3, 4), (1, 1)])
    third = place_order([(1, 1), (2, 1)])  # product 2 was never quoted

    assert [response.status_code for response in (first, second, third)] == [202, 202, 202]
    assert [call.body["lines"] for call in upstreams.products.quotes()] == [
        [{"product_id": 1, "quantity": 2}, {"product_id": 3, "quantity": 1}],
        [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 1}],
    ]
    body = second.json()
    assert (body["total"], body["currency"]) == ("12.90", "EUR")
    assert [
        (line["product_id"], line["product_name"], line["unit_price"], line["line_total"])
        for line in body["lines"]
    ] == [
        (3, "Paper filter", "0.10", "0.40"),
        (1, "Espresso cup", "12.50", "12.50"),
    ]


def test_without_kept_prices_every_order_asks_for_a_quote(
    place_order: Callable[..., Any], upstreams: Upstreams
) -> None:
    for _ in range(3):
        assert place_order([(1, 1)]).status_code == 202

    assert len(upstreams.products.quotes()) == 3


def test_kept_prices_expire(settings: Any, place_order: Callable[..., Any], upstreams: Upstreams) -> None:
    settings.ORDER_PRICE_CACHE_S = 0.2
    place_order([(1, 1)])
    time.sleep(0.3)
    place_order([(1, 1)])

    assert len(upstreams.products.quotes()) == 2


def test_a_refused_product_is_never_kept(
    kept_prices: None, place_order: Callable[..., Any], upstreams: Upstreams
) -> None:
    for _ in range(2):
        response = place_order([(4, 1)])  # inactive in the catalogue
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "product_inactive"

    assert len(upstreams.products.quotes()) == 2
    assert not Order.objects.exists()


def test_an_order_at_a_kept_price_that_changed_is_cancelled_before_any_money_moves(
    kept_prices: None, settle: Callable[..., Order], upstreams: Upstreams
) -> None:
    confirmed = settle([(1, 2)])
    upstreams.products.prices[1] = Decimal("13.00")

    order = settle([(1, 1)])  # placed at the kept 12.50

    assert confirmed.status == OrderStatus.CONFIRMED
    assert (order.status, order.cancel_reason, order.total) == (
        OrderStatus.CANCELLED,
        CancelReason.PRICE_CHANGED,
        Decimal("12.50"),
    )
    assert len(upstreams.products.quotes()) == 1
    reserve = upstreams.products.calls("reserve")[-1]
    assert reserve.body["lines"] == [{"product_id": 1, "quantity": 1, "unit_price": "12.50"}]
    assert [call.body["order_id"] for call in upstreams.payments.calls("charge")] == [str(confirmed.pk)]
    assert str(order.pk) not in upstreams.products.reservations
    assert upstreams.products.stock[1] == 98
    assert timeline(order) == [
        ("verify_user", "succeeded", None),
        ("reserve_stock", "failed", "price_changed"),
        ("cancel_order", "succeeded", None),
    ]
