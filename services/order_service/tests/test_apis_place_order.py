"""POST /api/orders/: pricing through product_service, validation, idempotency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from comptoir.testing import TokenFactory
from orders.models import (
    Order,
    OrderLine,
    OrderSaga,
    OrderStatus,
    OrderStatusChange,
    SagaMode,
    SagaTimelineEntry,
)

from .conftest import ALICE, BOB, STUB_SERVICE_TOKEN, ProductServiceStub

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("product_service")]

PlaceOrder = Callable[..., Any]


def _error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_places_a_pending_order_priced_by_product_service(
    place_order: PlaceOrder, product_service: ProductServiceStub
) -> None:
    response = place_order([(1, 2), (2, 1), (3, 3)])

    assert response.status_code == 202, response.json()
    body = response.json()
    order = Order.objects.get()
    assert response["Location"] == f"/api/orders/{order.pk}/"
    assert body["id"] == order.pk
    assert (body["status"], body["cancel_reason"], body["total"], body["currency"]) == (
        "PENDING",
        None,
        "115.29",
        "EUR",
    )
    assert body["lines"] == [
        {
            "product_id": 1,
            "product_name": "Espresso cup",
            "quantity": 2,
            "unit_price": "12.50",
            "line_total": "25.00",
        },
        {
            "product_id": 2,
            "product_name": "Coffee grinder",
            "quantity": 1,
            "unit_price": "89.99",
            "line_total": "89.99",
        },
        {
            "product_id": 3,
            "product_name": "Paper filter",
            "quantity": 3,
            "unit_price": "0.10",
            "line_total": "0.30",
        },
    ]
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in body["status_history"]] == [
        (None, "PENDING", None)
    ]
    assert (order.user_id, order.status, order.total, order.currency) == (
        ALICE,
        OrderStatus.PENDING,
        Decimal("115.29"),
        "EUR",
    )
    assert order.cancel_reason is None
    assert order.saga_mode == SagaMode.ORCHESTRATION
    assert list(order.lines.values_list("product_id", "quantity", "unit_price", "line_total")) == [
        (1, 2, Decimal("12.50"), Decimal("25.00")),
        (2, 1, Decimal("89.99"), Decimal("89.99")),
        (3, 3, Decimal("0.10"), Decimal("0.30")),
    ]
    assert list(order.status_history.values_list("from_status", "to_status")) == [(None, "PENDING")]
    (quote,) = product_service.quotes()
    assert quote.body == {
        "lines": [
            {"product_id": 1, "quantity": 2},
            {"product_id": 2, "quantity": 1},
            {"product_id": 3, "quantity": 3},
        ]
    }
    assert quote.headers["Authorization"] == f"Bearer {STUB_SERVICE_TOKEN}"


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
@pytest.mark.usefixtures("user_service")
def test_the_answer_is_what_a_read_back_shows(
    place_order: PlaceOrder, client: Client, alice_headers: dict[str, str], settings: Any, mode: str
) -> None:
    """The 202 is built from what the placing transaction wrote, not read back:
    it must be what the detail shows right after (nothing ran the saga since)."""
    settings.SAGA_MODE = mode
    with CaptureQueriesContext(connection) as queries:
        placed = place_order([(1, 2), (3, 3)])
    assert placed.status_code == 202, placed.json()
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if "orders_" in sql], reads  # nothing of the order read back

    read_back = client.get(placed["Location"], headers=alice_headers)

    assert read_back.status_code == 200
    assert placed.json() == read_back.json()
    assert placed.json()["saga_mode"] == mode
    # Choreography verified the user beside the quote: its first timeline entry.
    expected_timeline = [] if mode == "orchestration" else [("verify_user", "succeeded")]
    assert [(t["step"], t["status"]) for t in placed.json()["timeline"]] == expected_timeline


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
@pytest.mark.usefixtures("user_service")
def test_the_order_and_its_saga_are_written_by_one_statement(
    place_order: PlaceOrder, settings: Any, mode: str
) -> None:
    """The order, its lines, its first status, its saga and (choreography) the user
    check's timeline entry: one statement of order_service's tables."""
    settings.SAGA_MODE = mode
    with CaptureQueriesContext(connection) as queries:
        placed = place_order([(1, 2), (3, 3)])
    assert placed.status_code == 202, placed.json()
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(("INSERT", "UPDATE", "DELETE", "WITH")) and "orders_" in q["sql"]
    ]
    assert len(writes) == 1, writes
    assert "orders_ordersaga" in writes[0]
    assert "orders_sagatimelineentry" in writes[0]

    saga = OrderSaga.objects.get(pk=placed.json()["id"])
    timeline = list(SagaTimelineEntry.objects.filter(order_id=saga.pk).values_list("step", "status", "error"))
    assert (saga.status, saga.attempts, saga.failure_reason, saga.compensation_plan) == (
        "RUNNING",
        0,
        None,
        [],
    )
    if mode == "orchestration":
        assert (saga.current_step, saga.customer_email, timeline) == ("verify_user", "", [])
        assert saga.stall_deadline > saga.created_at  # swept if its first step never runs
    else:
        assert (saga.current_step, timeline) == ("reserve_stock", [("verify_user", "succeeded", None)])
        assert (saga.customer_email, saga.customer_name) == (f"user{ALICE}@comptoir.dev", f"User {ALICE}")


def test_the_request_id_travels_to_product_service(
    place_order: PlaceOrder, product_service: ProductServiceStub, alice_headers: dict[str, str]
) -> None:
    response = place_order(headers={**alice_headers, "X-Request-ID": "req-order-42"})

    assert response.status_code == 202
    assert product_service.quotes()[0].headers["X-Request-ID"] == "req-order-42"


def test_client_prices_status_owner_and_total_are_ignored(
    place_order: PlaceOrder, product_service: ProductServiceStub
) -> None:
    response = place_order(
        body={
            "lines": [
                {
                    "product_id": 2,
                    "quantity": 2,
                    "unit_price": "0.01",
                    "price": "0.01",
                    "line_total": "0.02",
                    "product_name": "Free grinder",
                }
            ],
            "status": "CONFIRMED",
            "user_id": BOB,
            "user": BOB,
            "total": "0.02",
            "currency": "USD",
            "cancel_reason": "system_error",
            "saga_mode": "choreography",
            "id": 999,
        }
    )

    assert response.status_code == 202, response.json()
    order = Order.objects.get()
    assert order.pk != 999
    assert (order.user_id, order.status, order.cancel_reason, order.total, order.currency) == (
        ALICE,
        OrderStatus.PENDING,
        None,
        Decimal("179.98"),
        "EUR",
    )
    assert order.saga_mode == SagaMode.ORCHESTRATION
    assert list(order.lines.values_list("product_name", "unit_price", "line_total")) == [
        ("Coffee grinder", Decimal("89.99"), Decimal("179.98"))
    ]
    # Only what the quote contract names leaves the service.
    assert product_service.quotes()[0].body == {"lines": [{"product_id": 2, "quantity": 2}]}


@pytest.mark.parametrize(
    ("body", "details"),
    [
        pytest.param({}, {"lines": ["This field is required."]}, id="no-lines-field"),
        pytest.param({"lines": None}, {"lines": ["This field may not be null."]}, id="null-lines"),
        pytest.param(
            {"lines": []},
            {"lines": {"non_field_errors": ["Ensure this field has at least 1 elements."]}},
            id="empty",
        ),
        pytest.param(
            {"lines": "1x2"},
            {"lines": {"non_field_errors": ['Expected a list of items but got type "str".']}},
            id="not-a-list",
        ),
        pytest.param(
            {"lines": [{"product_id": n, "quantity": 1} for n in range(1, 52)]},
            {"lines": {"non_field_errors": ["Ensure this field has no more than 50 elements."]}},
            id="51-lines",
        ),
        pytest.param(
            {"lines": [{"product_id": 1, "quantity": 0}]},
            {"lines": {"0": {"quantity": ["Ensure this value is greater than or equal to 1."]}}},
            id="quantity-0",
        ),
        pytest.param(
            {"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 101}]},
            {"lines": {"1": {"quantity": ["Ensure this value is less than or equal to 100."]}}},
            id="quantity-101",
        ),
        pytest.param(
            {"lines": [{"product_id": 0, "quantity": 1}]},
            {"lines": {"0": {"product_id": ["Ensure this value is greater than or equal to 1."]}}},
            id="product-id-0",
        ),
        pytest.param(
            {"lines": [{"product_id": -3, "quantity": 1}]},
            {"lines": {"0": {"product_id": ["Ensure this value is greater than or equal to 1."]}}},
            id="product-id-negative",
        ),
        pytest.param(
            {"lines": [{"product_id": "abc", "quantity": 1.5}]},
            {
                "lines": {
                    "0": {
                        "product_id": ["A valid integer is required."],
                        "quantity": ["A valid integer is required."],
                    }
                }
            },
            id="not-integers",
        ),
        pytest.param(
            {"lines": [{"product_id": True, "quantity": 1}]},
            {"lines": {"0": {"product_id": ["A valid integer is required."]}}},
            id="boolean-product-id",
        ),
        pytest.param(
            {"lines": [{"product_id": 1}]},
            {"lines": {"0": {"quantity": ["This field is required."]}}},
            id="missing-quantity",
        ),
        pytest.param(
            {"lines": [7]},
            {"lines": {"0": {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]}}},
            id="line-not-an-object",
        ),
    ],
)
def test_invalid_lines_are_refused_before_any_quote(
    place_order: PlaceOrder, product_service: ProductServiceStub, body: Any, details: Any
) -> None:
    response = place_order(body=body)

    assert response.status_code == 400
    assert _error(response)["code"] == "validation_error"
    assert _error(response)["details"] == details
    assert Order.objects.count() == 0
    assert product_service.quotes() == []


def test_a_product_on_two_lines_is_refused_not_merged(
    place_order: PlaceOrder, product_service: ProductServiceStub
) -> None:
    response = place_order([(1, 1), (2, 1), (1, 3), (2, 2), (1, 1)])

    assert response.status_code == 400
    assert _error(response)["code"] == "duplicate_product"
    assert _error(response)["details"] == {"product_ids": [1, 2]}
    assert Order.objects.count() == 0
    assert product_service.quotes() == []


def test_a_body_that_is_not_json_is_a_parse_error(client: Client, alice_headers: dict[str, str]) -> None:
    response = client.post("/api/orders/", "{lines:", content_type="application/json", headers=alice_headers)

    assert response.status_code == 400
    assert _error(response)["code"] == "parse_error"
    assert Order.objects.count() == 0


def test_fifty_lines_of_a_hundred_are_accepted(place_order: PlaceOrder) -> None:
    response = place_order([(product_id, 100) for product_id in range(100, 150)])

    assert response.status_code == 202
    assert response.json()["total"] == "5000.00"
    assert OrderLine.objects.count() == 50


# --- product_service's verdicts and failures --------------------------------------------


def test_an_unknown_product_is_product_services_404_passed_through(place_order: PlaceOrder) -> None:
    response = place_order([(1, 1), (404, 1)])

    assert response.status_code == 404
    assert _error(response)["code"] == "product_not_found"
    assert _error(response)["details"] == {"product_ids": [404]}
    assert Order.objects.count() == 0
    assert OrderLine.objects.count() == 0


def test_an_inactive_product_is_product_services_400_passed_through(place_order: PlaceOrder) -> None:
    response = place_order([(4, 1)])

    assert response.status_code == 400
    assert _error(response)["code"] == "product_inactive"
    assert _error(response)["details"] == {"product_ids": [4]}
    assert Order.objects.count() == 0


def test_a_refusal_without_an_error_body_gets_our_code(
    place_order: PlaceOrder, product_service: ProductServiceStub
) -> None:
    product_service.quote_override = (400, b"<html>Bad Request</html>")

    response = place_order([(1, 1)])

    assert response.status_code == 400
    assert _error(response)["code"] == "product_quote_rejected"
    assert Order.objects.count() == 0


def test_product_service_down_is_503_and_no_order(
    place_order: PlaceOrder, settings: Any, closed_port_url: str
) -> None:
    settings.PRODUCT_SERVICE_URL = closed_port_url

    response = place_order([(1, 1)])

    assert response.status_code == 503
    assert _error(response)["code"] == "unavailable"
    assert set(response.json()["error"]) == {"code", "message", "details", "trace_id"}
    assert Order.objects.count() == 0
    assert OrderStatusChange.objects.count() == 0


def test_no_service_token_is_503_and_no_order(
    place_order: PlaceOrder, product_service: ProductServiceStub, settings: Any, closed_port_url: str
) -> None:
    settings.SERVICE_TOKEN_URL = f"{closed_port_url}/internal/users/auth/service-token/"

    response = place_order([(1, 1)])

    assert response.status_code == 503
    assert _error(response)["code"] == "unavailable"
    assert Order.objects.count() == 0
    assert product_service.quotes() == []


@pytest.mark.parametrize("upstream_status", [500, 503])
def test_product_service_failing_is_503_and_no_order(
    place_order: PlaceOrder, product_service: ProductServiceStub, upstream_status: int
) -> None:
    product_service.quote_override = (upstream_status, {"error": {"code": "internal_error"}})

    response = place_order([(1, 1)])

    assert response.status_code == 503
    assert _error(response)["code"] == "unavailable"
    assert Order.objects.count() == 0


def test_a_quote_is_retried_after_a_passing_failure(
    place_order: PlaceOrder, product_service: ProductServiceStub
) -> None:
    # A quote has no effect upstream, so the client may safely ask again.
    product_service.quote_failures_left = 1

    response = place_order([(1, 1)])

    assert response.status_code == 202
    assert len(product_service.quotes()) == 2
    assert Order.objects.count() == 1


def _quote(**changes: Any) -> dict[str, Any]:
    quote: dict[str, Any] = {
        "lines": [
            {
                "product_id": 1,
                "name": "Espresso cup",
                "quantity": 2,
                "unit_price": "12.50",
                "currency": "EUR",
                "line_total": "25.00",
            }
        ],
        "total": "25.00",
        "currency": "EUR",
    }
    line_changes = changes.pop("line", {})
    quote["lines"][0].update(line_changes)
    quote.update(changes)
    return quote


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param({"lines": []}, id="missing-fields"),
        pytest.param(_quote(total="24.99"), id="total-not-the-sum"),
        pytest.param(_quote(line={"line_total": "25.01"}), id="line-total-not-price-times-quantity"),
        pytest.param(_quote(line={"quantity": 3, "line_total": "37.50"}, total="37.50"), id="other-quantity"),
        pytest.param(_quote(line={"product_id": 2}), id="other-product"),
        pytest.param(_quote(line={"currency": "USD"}), id="mixed-currencies"),
        pytest.param(_quote(line={"unit_price": "12.505"}), id="sub-cent-price"),
    ],
)
def test_a_quote_that_does_not_add_up_is_502_and_no_order(
    place_order: PlaceOrder, product_service: ProductServiceStub, answer: Any
) -> None:
    product_service.quote_override = (200, answer)

    response = place_order([(1, 2)])

    assert response.status_code == 502
    assert _error(response)["code"] == "product_quote_invalid"
    assert Order.objects.count() == 0


def test_a_total_beyond_what_an_order_holds_is_refused(place_order: PlaceOrder) -> None:
    response = place_order([(5, 11)])  # 11 x 999,999,999.99

    assert response.status_code == 400
    assert _error(response)["code"] == "order_total_too_large"
    assert Order.objects.count() == 0


# --- Idempotency-Key ------------------------------------------------------------------


def test_the_same_key_returns_the_same_order(
    place_order: PlaceOrder, product_service: ProductServiceStub
) -> None:
    first = place_order([(1, 2), (3, 1)], idempotency_key="key-7f3a")
    again = place_order([(1, 2), (3, 1)], idempotency_key="key-7f3a")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Order.objects.count() == 1
    assert Order.objects.get().idempotency_key == "key-7f3a"
    assert OrderStatusChange.objects.count() == 1
    assert len(product_service.quotes()) == 1


def test_the_same_key_with_the_lines_in_another_order_is_the_same_request(
    place_order: PlaceOrder,
) -> None:
    first = place_order([(1, 2), (3, 1)], idempotency_key="key-reordered")
    again = place_order([(3, 1), (1, 2)], idempotency_key="key-reordered")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1


def test_the_same_key_with_other_lines_is_409(
    place_order: PlaceOrder, product_service: ProductServiceStub
) -> None:
    first = place_order([(1, 2)], idempotency_key="key-reused")
    other = place_order([(1, 3)], idempotency_key="key-reused")

    assert other.status_code == 409
    assert _error(other)["code"] == "idempotency_key_reused"
    assert _error(other)["details"] == {"order_id": first.json()["id"]}
    assert Order.objects.count() == 1
    assert OrderLine.objects.get().quantity == 2
    assert len(product_service.quotes()) == 1


def test_keys_are_scoped_to_their_user(place_order: PlaceOrder, bob_headers: dict[str, str]) -> None:
    alices = place_order([(1, 1)], idempotency_key="shared-key")
    bobs = place_order([(1, 1)], idempotency_key="shared-key", headers=bob_headers)

    assert (alices.status_code, bobs.status_code) == (202, 202)
    assert alices.json()["id"] != bobs.json()["id"]
    assert sorted(Order.objects.values_list("user_id", flat=True)) == [ALICE, BOB]


def test_without_a_key_each_request_places_an_order(place_order: PlaceOrder) -> None:
    first, second = place_order([(1, 1)]), place_order([(1, 1)])

    assert (first.status_code, second.status_code) == (202, 202)
    assert Order.objects.count() == 2


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("é", id="non-ascii"),
    ],
)
def test_a_malformed_key_is_refused(
    client: Client, alice_headers: dict[str, str], product_service: ProductServiceStub, key: str
) -> None:
    response = client.post(
        "/api/orders/",
        {"lines": [{"product_id": 1, "quantity": 1}]},
        content_type="application/json",
        headers={**alice_headers, "Idempotency-Key": key},
    )

    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_idempotency_key"
    assert Order.objects.count() == 0
    assert product_service.quotes() == []


def test_a_key_of_255_characters_is_accepted(place_order: PlaceOrder) -> None:
    response = place_order([(1, 1)], idempotency_key="k" * 255)

    assert response.status_code == 202


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_place_one_order(
    product_service: ProductServiceStub, tokens: TokenFactory
) -> None:
    racers = 4
    # Every request is held at the quote until all have passed the key lookup,
    # so they all reach the insert together: only the unique constraint decides.
    product_service.quote_barrier = threading.Barrier(racers)
    headers = {**tokens.header(tokens.user(ALICE)), "Idempotency-Key": "key-race"}
    results: list[tuple[int, Any]] = []
    results_lock = threading.Lock()

    def place() -> None:
        try:
            response = Client().post(
                "/api/orders/",
                {"lines": [{"product_id": 1, "quantity": 2}]},
                content_type="application/json",
                headers=headers,
            )
            with results_lock:
                results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=place) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert len(product_service.quotes()) == racers
    assert sorted(status for status, _ in results) == [200, 200, 200, 202]
    assert len({body["id"] for _, body in results}) == 1
    assert Order.objects.count() == 1
    assert OrderLine.objects.count() == 1
    assert OrderStatusChange.objects.count() == 1
