"""No overselling: parallel reservations, each on its own database connection,
against the real PostgreSQL (transaction=True: every thread sees committed rows)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from catalog.models import Product, StockLevel, StockReservation
from comptoir.testing import TokenFactory

from .conftest import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)

RESERVATIONS = "/internal/stock/reservations/"
TIMEOUT_S = 60


def run_in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Starts every call at once, each on its own thread and DB connection."""
    start = threading.Barrier(len(calls), timeout=TIMEOUT_S)

    def run(call: Callable[[], Any]) -> Any:
        try:
            start.wait()
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=TIMEOUT_S) for future in futures]


def reserve(token: str, order_id: str, lines: list[tuple[Product, int]]) -> Callable[[], tuple[int, Any]]:
    body = {"order_id": order_id, "lines": [{"product_id": p.pk, "quantity": q} for p, q in lines]}

    def call() -> tuple[int, Any]:
        response = Client().post(
            RESERVATIONS, body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code, response.json()

    return call


def test_twenty_orders_compete_for_five_units(tokens: TokenFactory, make_product: ProductFactory) -> None:
    product = make_product(stock=5)
    token = tokens.service("order_service")
    results = run_in_parallel([reserve(token, f"order-{n}", [(product, 1)]) for n in range(20)])

    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 5, 409: 15}
    refusals = [body["error"] for status, body in results if status == 409]
    assert {error["code"] for error in refusals} == {"insufficient_stock"}
    assert StockLevel.objects.get(product=product).quantity == 0
    assert StockReservation.objects.count() == 5
    assert sorted(body["order_id"] for status, body in results if status == 201) == sorted(
        StockReservation.objects.values_list("order_id", flat=True)
    )


def test_orders_naming_products_in_opposite_orders_do_not_deadlock(
    tokens: TokenFactory, make_product: ProductFactory
) -> None:
    first, second = make_product(stock=100), make_product(stock=100)
    token = tokens.service("order_service")
    calls = [
        reserve(token, f"order-{n}", [(first, 1), (second, 2)] if n % 2 else [(second, 2), (first, 1)])
        for n in range(12)
    ]
    results = run_in_parallel(calls)

    assert [status for status, _ in results] == [201] * 12
    assert StockLevel.objects.get(product=first).quantity == 100 - 12
    assert StockLevel.objects.get(product=second).quantity == 100 - 24


def test_the_same_order_reserved_in_parallel_is_held_once(
    tokens: TokenFactory, make_product: ProductFactory
) -> None:
    product = make_product(stock=10)
    token = tokens.service("order_service")
    results = run_in_parallel([reserve(token, "order-1", [(product, 3)]) for _ in range(8)])

    expected = {
        "order_id": "order-1",
        "status": "RESERVED",
        "lines": [{"product_id": product.pk, "quantity": 3}],
    }
    assert results == [(201, expected)] * 8
    assert StockLevel.objects.get(product=product).quantity == 7
    assert StockReservation.objects.count() == 1


def test_parallel_releases_return_the_stock_once(tokens: TokenFactory, make_product: ProductFactory) -> None:
    product = make_product(stock=4)
    token = tokens.service("order_service")
    assert reserve(token, "order-1", [(product, 4)])()[0] == 201

    def release() -> int:
        return (
            Client()
            .post(f"{RESERVATIONS}order-1/release/", headers={"Authorization": f"Bearer {token}"})
            .status_code
        )

    assert run_in_parallel([release] * 8) == [200] * 8
    assert StockLevel.objects.get(product=product).quantity == 4
