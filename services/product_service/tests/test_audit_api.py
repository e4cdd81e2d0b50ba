"""GET /internal/stock/audit/...: the reconciliation auditor's read-only pages
(service tokens with `stock:audit` only), and the stock ledger they expose."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog import selectors, services
from catalog.models import Product, StockLevel, StockMovement, StockReservation
from catalog.selectors import RequestedLine

from .conftest import Api, ProductFactory

pytestmark = pytest.mark.django_db

STOCK_AUDIT = "/internal/stock/audit/products/"
RESERVATION_AUDIT = "/internal/stock/audit/reservations/"


def balance(api: Api, product: Product) -> dict[str, Any]:
    response = api.get(STOCK_AUDIT, {"after": product.pk - 1, "limit": 1})
    assert response.status_code == 200, response.json()
    [row] = response.json()["results"]
    return dict(row)


def hold(order_id: str, *pairs: tuple[Product, int]) -> None:
    services.reservation_create(
        order_id=order_id, lines=[RequestedLine(product_id=p.pk, quantity=q) for p, q in pairs]
    )


@pytest.fixture
def beans(make_product: ProductFactory) -> Product:
    return make_product(sku="BEANS", stock=10)


@pytest.fixture
def kettle(make_product: ProductFactory) -> Product:
    return make_product(sku="KETTLE", stock=4)


@pytest.mark.parametrize("path", [STOCK_AUDIT, RESERVATION_AUDIT])
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("end_user", 403, "permission_denied"),
        ("staff", 403, "permission_denied"),
        ("email_service", 403, "insufficient_scope"),
        ("saga_only", 403, "insufficient_scope"),
    ],
)
def test_audit_routes_need_the_stock_audit_scope(
    request: pytest.FixtureRequest, client: Any, tokens: Any, caller: str, status: int, code: str, path: str
) -> None:
    # order_service's saga scopes without the audit one: reading stock is not auditing it.
    api = (
        Api(client, tokens.service("order_service", scopes=["stock:read", "stock:reserve"]))
        if caller == "saga_only"
        else request.getfixturevalue(caller)
    )
    response = api.get(path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if code == "insufficient_scope":
        assert response.json()["error"]["details"]["required_scope"] == "stock:audit"


def test_every_stock_change_is_explained_by_a_movement(
    order_service: Api, beans: Product, kettle: Product
) -> None:
    hold("o-1", (beans, 3), (kettle, 1))
    hold("o-2", (beans, 2))
    hold("o-3", (beans, 1))
    services.reservation_commit(order_id="o-1")
    services.reservation_release(order_id="o-2")
    services.stock_set(product_id=beans.pk, quantity=20)  # a stock count: +14 received

    assert balance(order_service, beans) == {
        "product_id": beans.pk,
        "quantity": 20,
        "ledger": 20,
        "adjusted": 10 + 14,
        "held": 1,
        "committed": 3,
    }
    assert balance(order_service, kettle) == {
        "product_id": kettle.pk,
        "quantity": 3,
        "ledger": 3,
        "adjusted": 4,
        "held": 0,
        "committed": 1,
    }
    assert list(
        StockMovement.objects.filter(product=beans)
        .order_by("id")
        .values_list("kind", "delta", "reservation__order_id")
    ) == [
        ("ADJUST", 10, None),
        ("HOLD", -3, "o-1"),
        ("HOLD", -2, "o-2"),
        ("HOLD", -1, "o-3"),
        ("RELEASE", 2, "o-2"),
        ("ADJUST", 14, None),
    ]


def test_replayed_and_refused_operations_write_no_movement(beans: Product) -> None:
    hold("o-1", (beans, 3))
    hold("o-1", (beans, 3))  # the same order again: replayed
    services.reservation_release(order_id="o-1")
    services.reservation_release(order_id="o-1")
    with pytest.raises(Exception, match="Not enough stock"):
        hold("o-2", (beans, 11))
    assert list(StockMovement.objects.filter(product=beans).values_list("kind", "delta")) == [
        ("ADJUST", 10),
        ("HOLD", -3),
        ("RELEASE", 3),
    ]


def test_a_quantity_changed_behind_the_ledger_shows(order_service: Api, beans: Product) -> None:
    StockLevel.objects.filter(product=beans).update(quantity=7)

    row = balance(order_service, beans)
    assert (row["quantity"], row["ledger"], row["adjusted"], row["held"], row["committed"]) == (
        7,
        10,
        10,
        0,
        0,
    )


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(child for sub in node.get("Plans", []) for child in _plan_nodes(sub))]


def test_a_page_of_balances_reads_its_history_once_not_once_per_product(
    beans: Product, kettle: Product
) -> None:
    """One statement (one snapshot), and no subquery run for each product: a page
    reads its movements and reservation lines once, so a run of the auditor costs
    what the history holds, not the products times all of it."""
    hold("o-1", (beans, 3), (kettle, 1))
    with CaptureQueriesContext(connection) as queries:
        selectors.stock_balance_page(after=0, limit=10)
    assert len(queries) == 1
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + queries[0]["sql"])
        [[plan]] = cursor.fetchone()
    correlated = [
        node["Subplan Name"]
        for node in _plan_nodes(plan["Plan"])
        if str(node.get("Subplan Name", "")).startswith("SubPlan")
    ]
    assert correlated == []


def test_stock_balances_come_in_keyset_pages(order_service: Api, make_product: ProductFactory) -> None:
    products = [make_product(stock=n) for n in (1, 2, 3)]

    first = order_service.get(STOCK_AUDIT, {"limit": 2}).json()
    second = order_service.get(STOCK_AUDIT, {"limit": 2, "after": first["next_after"]}).json()

    assert [row["product_id"] for row in first["results"]] == [p.pk for p in products[:2]]
    assert first["next_after"] == products[1].pk
    assert [(row["product_id"], row["quantity"]) for row in second["results"]] == [(products[2].pk, 3)]
    assert second["next_after"] is None


@pytest.mark.parametrize("query", [{"limit": 501}, {"limit": 0}, {"after": -1}, {"since": "yesterday"}])
def test_unbounded_or_malformed_queries_are_400(order_service: Api, query: dict[str, Any]) -> None:
    response = order_service.get(RESERVATION_AUDIT, query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_reservations_by_order_id_or_by_window(order_service: Api, beans: Product, kettle: Product) -> None:
    hold("o-1", (beans, 1), (kettle, 2))
    hold("o-2", (beans, 1))
    hold("o-3", (beans, 1))
    services.reservation_commit(order_id="o-1")
    old = timezone.now() - timedelta(hours=2)
    StockReservation.objects.filter(order_id="o-3").update(created_at=old)

    by_order = order_service.get(RESERVATION_AUDIT, {"order_id": ["o-1", "o-3", "unknown"]}).json()
    recent = order_service.get(RESERVATION_AUDIT, {"since": (old + timedelta(hours=1)).isoformat()}).json()
    older = order_service.get(RESERVATION_AUDIT, {"until": (old + timedelta(hours=1)).isoformat()}).json()

    assert [(r["order_id"], r["status"], r["lines"]) for r in by_order["results"]] == [
        (
            "o-1",
            "COMMITTED",
            [{"product_id": beans.pk, "quantity": 1}, {"product_id": kettle.pk, "quantity": 2}],
        ),
        ("o-3", "RESERVED", [{"product_id": beans.pk, "quantity": 1}]),
    ]
    assert [r["order_id"] for r in recent["results"]] == ["o-1", "o-2"]
    assert [r["order_id"] for r in older["results"]] == ["o-3"]
    assert by_order["next_after"] is None
