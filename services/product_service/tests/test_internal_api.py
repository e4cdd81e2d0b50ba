"""Internal stock operations: quote, reserve, release, commit (service tokens only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Product, ReservationStatus, StockReservation, StockReservationLine

from .conftest import Api, ProductFactory

pytestmark = pytest.mark.django_db

QUOTE = "/internal/products/quote/"
RESERVATIONS = "/internal/stock/reservations/"

StockOf = Callable[[Product], int]


def lines(*pairs: tuple[Product, int]) -> list[dict[str, int]]:
    return [{"product_id": product.pk, "quantity": quantity} for product, quantity in pairs]


@pytest.fixture
def beans(make_product: ProductFactory) -> Product:
    return make_product(sku="BEANS", name="Beans", price="12.90", stock=5)


@pytest.fixture
def kettle(make_product: ProductFactory) -> Product:
    return make_product(sku="KETTLE", name="Kettle", price="45.00", stock=2, category="gear")


@pytest.fixture
def reserved(order_service: Api, beans: Product, kettle: Product) -> dict[str, Any]:
    response = order_service.post(
        RESERVATIONS, {"order_id": "order-1", "lines": lines((beans, 2), (kettle, 1))}
    )
    assert response.status_code == 201
    return response.json()


# --- authorization matrix -----------------------------------------------------

INTERNAL_CALLS = [
    ("post", QUOTE),
    ("post", RESERVATIONS),
    ("post", RESERVATIONS + "batch/"),
    ("get", RESERVATIONS + "order-1/"),
    ("post", RESERVATIONS + "order-1/release/"),
    ("post", RESERVATIONS + "order-1/commit/"),
]


@pytest.mark.parametrize(("method", "path"), INTERNAL_CALLS)
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("end_user", 403, "permission_denied"),
        ("staff", 403, "permission_denied"),
        ("email_service", 403, "insufficient_scope"),
    ],
)
def test_internal_routes_need_a_service_token_with_their_scope(
    request: pytest.FixtureRequest,
    reserved: dict[str, Any],
    beans: Product,
    stock_of: StockOf,
    caller: str,
    status: int,
    code: str,
    method: str,
    path: str,
) -> None:
    api: Api = request.getfixturevalue(caller)
    body = {"order_id": "order-2", "lines": lines((beans, 1))}
    response = api.get(path) if method == "get" else api.post(path, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert stock_of(beans) == 3
    assert list(StockReservation.objects.values_list("order_id", "status")) == [("order-1", "RESERVED")]


# --- quote -------------------------------------------------------------------


def test_quote_prices_lines_from_the_catalogue(order_service: Api, beans: Product, kettle: Product) -> None:
    body = {"lines": [{"product_id": beans.pk, "quantity": 3, "unit_price": "0.01"}, *lines((kettle, 1))]}
    response = order_service.post(QUOTE, body)
    assert response.status_code == 200
    assert response.json() == {
        "lines": [
            {
                "product_id": beans.pk,
                "name": "Beans",
                "quantity": 3,
                "unit_price": "12.90",
                "currency": "EUR",
                "line_total": "38.70",
            },
            {
                "product_id": kettle.pk,
                "name": "Kettle",
                "quantity": 1,
                "unit_price": "45.00",
                "currency": "EUR",
                "line_total": "45.00",
            },
        ],
        "total": "83.70",
        "currency": "EUR",
    }


def test_quote_does_not_touch_stock(order_service: Api, kettle: Product, stock_of: StockOf) -> None:
    assert order_service.post(QUOTE, {"lines": lines((kettle, 9))}).status_code == 200
    assert stock_of(kettle) == 2


def test_quote_of_an_unknown_product_is_404(order_service: Api, beans: Product) -> None:
    response = order_service.post(
        QUOTE, {"lines": [*lines((beans, 1)), {"product_id": 999999, "quantity": 1}]}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"
    assert response.json()["error"]["details"] == {"product_ids": [999999]}


def test_quote_of_an_inactive_product_is_400(order_service: Api, make_product: ProductFactory) -> None:
    retired = make_product(is_active=False)
    response = order_service.post(QUOTE, {"lines": lines((retired, 1))})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "product_inactive"
    assert response.json()["error"]["details"] == {"product_ids": [retired.pk]}


def test_quote_in_two_currencies_is_400(
    order_service: Api, beans: Product, make_product: ProductFactory
) -> None:
    dollars = make_product(currency="USD")
    response = order_service.post(QUOTE, {"lines": lines((beans, 1), (dollars, 1))})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "currency_mismatch"
    assert response.json()["error"]["details"] == {"currencies": ["EUR", "USD"]}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"lines": []},
        {"lines": "beans"},
        {"lines": [{"product_id": 1}]},
        {"lines": [{"product_id": 1, "quantity": 0}]},
        {"lines": [{"product_id": 1, "quantity": -2}]},
        {"lines": [{"product_id": "x", "quantity": 1}]},
        {"lines": [{"product_id": 1, "quantity": 10_001}]},
        {"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]},
        {"lines": [{"product_id": n, "quantity": 1} for n in range(1, 102)]},
    ],
)
def test_quote_validation_errors(order_service: Api, db: None, body: dict[str, Any]) -> None:
    response = order_service.post(QUOTE, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["details"]) == ["lines"]


# --- reserve -----------------------------------------------------------------


def test_reserve_takes_the_stock_of_every_line(
    reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    assert reserved == {"order_id": "order-1", "status": "RESERVED", "lines": lines((beans, 2), (kettle, 1))}
    assert (stock_of(beans), stock_of(kettle)) == (3, 1)


def test_reserve_answers_with_the_lines_it_wrote_without_reading_them_back(
    order_service: Api, beans: Product, kettle: Product
) -> None:
    body = {"order_id": "order-2", "lines": lines((kettle, 1), (beans, 2))}
    with CaptureQueriesContext(connection) as queries:
        response = order_service.post(RESERVATIONS, body)

    assert response.status_code == 201
    # By product id, as a reservation read from the database answers.
    assert response.json()["lines"] == sorted(
        lines((kettle, 1), (beans, 2)), key=lambda line: line["product_id"]
    )
    assert response.json() == order_service.get(f"{RESERVATIONS}order-2/").json()
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in selects if "stockreservationline" in sql]


def test_reserve_is_idempotent_per_order(
    order_service: Api, reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    again = order_service.post(RESERVATIONS, {"order_id": "order-1", "lines": lines((kettle, 1), (beans, 2))})
    assert again.status_code == 201
    assert again.json() == reserved
    assert (stock_of(beans), stock_of(kettle)) == (3, 1)
    assert StockReservation.objects.count() == 1
    assert StockReservationLine.objects.count() == 2


def test_reserve_accepts_an_integer_order_id(order_service: Api, beans: Product) -> None:
    response = order_service.post(RESERVATIONS, {"order_id": 42, "lines": lines((beans, 1))})
    assert response.status_code == 201
    assert response.json()["order_id"] == "42"


def test_same_order_with_other_lines_is_409_and_changes_nothing(
    order_service: Api, reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    response = order_service.post(RESERVATIONS, {"order_id": "order-1", "lines": lines((beans, 3))})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reservation_mismatch"
    assert (stock_of(beans), stock_of(kettle)) == (3, 1)
    assert StockReservationLine.objects.count() == 2


def test_insufficient_stock_reserves_nothing(
    order_service: Api, beans: Product, kettle: Product, make_product: ProductFactory, stock_of: StockOf
) -> None:
    empty = make_product(stock=0)
    body = {"order_id": "order-9", "lines": lines((beans, 5), (kettle, 3), (empty, 1))}
    response = order_service.post(RESERVATIONS, body)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "insufficient_stock"
    assert error["details"] == {
        "unavailable": [
            {"product_id": kettle.pk, "requested": 3, "available": 2},
            {"product_id": empty.pk, "requested": 1, "available": 0},
        ]
    }
    assert (stock_of(beans), stock_of(kettle), stock_of(empty)) == (5, 2, 0)
    assert not StockReservation.objects.exists()
    assert not StockReservationLine.objects.exists()


def test_reserve_at_the_catalogues_prices_holds_the_lines(
    order_service: Api, beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    body = {
        "order_id": "order-p",
        "currency": beans.currency,
        "lines": [
            {"product_id": beans.pk, "quantity": 1, "unit_price": str(beans.price)},
            {"product_id": kettle.pk, "quantity": 1, "unit_price": str(kettle.price)},
        ],
    }
    response = order_service.post(RESERVATIONS, body)
    assert response.status_code == 201, response.json()
    assert (stock_of(beans), stock_of(kettle)) == (4, 1)


@pytest.mark.parametrize("change", ["price", "currency"])
def test_reserve_at_a_price_the_catalogue_no_longer_asks_is_409_and_reserves_nothing(
    order_service: Api, beans: Product, kettle: Product, stock_of: StockOf, change: str
) -> None:
    ordered_price = beans.price + (1 if change == "price" else 0)
    currency = "USD" if change == "currency" else beans.currency
    body = {
        "order_id": "order-p",
        "currency": currency,
        "lines": [
            {"product_id": kettle.pk, "quantity": 1, "unit_price": str(kettle.price)},
            {"product_id": beans.pk, "quantity": 2, "unit_price": str(ordered_price)},
        ],
    }
    response = order_service.post(RESERVATIONS, body)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "price_changed"
    changed = [item["product_id"] for item in error["details"]["changed"]]
    assert changed == ([beans.pk] if change == "price" else [kettle.pk, beans.pk])
    assert error["details"]["product_ids"] == changed
    assert (stock_of(beans), stock_of(kettle)) == (5, 2)
    assert not StockReservation.objects.exists()


def test_after_a_refusal_the_same_order_may_try_again(
    order_service: Api, beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    assert order_service.post(RESERVATIONS, {"order_id": "o", "lines": lines((kettle, 3))}).status_code == 409
    response = order_service.post(RESERVATIONS, {"order_id": "o", "lines": lines((kettle, 2))})
    assert response.status_code == 201
    assert stock_of(kettle) == 0


def test_reserve_of_an_unknown_product_is_404_and_reserves_nothing(
    order_service: Api, beans: Product, stock_of: StockOf
) -> None:
    body = {"order_id": "order-9", "lines": [*lines((beans, 1)), {"product_id": 999999, "quantity": 1}]}
    response = order_service.post(RESERVATIONS, body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"
    assert response.json()["error"]["details"] == {"product_ids": [999999]}
    assert stock_of(beans) == 5
    assert not StockReservation.objects.exists()


def test_reserve_of_an_inactive_product_is_400(
    order_service: Api, make_product: ProductFactory, stock_of: StockOf
) -> None:
    retired = make_product(is_active=False, stock=4)
    response = order_service.post(RESERVATIONS, {"order_id": "order-9", "lines": lines((retired, 1))})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "product_inactive"
    assert stock_of(retired) == 4
    assert not StockReservation.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": [{"product_id": 1, "quantity": 1}]}, "order_id"),
        ({"order_id": "", "lines": [{"product_id": 1, "quantity": 1}]}, "order_id"),
        ({"order_id": "x" * 65, "lines": [{"product_id": 1, "quantity": 1}]}, "order_id"),
        ({"order_id": "o-1", "lines": []}, "lines"),
        ({"order_id": "o-1", "lines": [{"product_id": 1, "quantity": 0}]}, "lines"),
        ({"order_id": "o-1", "lines": [{"product_id": 1, "quantity": 1, "unit_price": "ten"}]}, "lines"),
        ({"order_id": "o-1", "lines": [{"product_id": 1, "quantity": 1, "unit_price": "-1.00"}]}, "lines"),
        ({"order_id": "o-1", "currency": "euro", "lines": [{"product_id": 1, "quantity": 1}]}, "currency"),
    ],
)
def test_reserve_validation_errors(order_service: Api, db: None, body: dict[str, Any], field: str) -> None:
    response = order_service.post(RESERVATIONS, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["details"]) == [field]
    assert not StockReservation.objects.exists()


def test_reserved_products_cannot_be_deleted(staff: Api, reserved: dict[str, Any], beans: Product) -> None:
    response = staff.delete(f"/api/products/{beans.pk}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "product_in_use"
    assert Product.objects.filter(pk=beans.pk).exists()


def test_get_a_reservation(order_service: Api, reserved: dict[str, Any]) -> None:
    response = order_service.get(f"{RESERVATIONS}order-1/")
    assert response.status_code == 200
    assert response.json() == reserved


# --- a batch of reservations ----------------------------------------------------


def test_a_batch_answers_each_reservation_as_its_own_request_would(
    order_service: Api, reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    items = [
        {"order_id": "order-2", "lines": lines((beans, 2))},
        {"order_id": "order-3", "lines": lines((kettle, 5))},  # more than there is
        {"order_id": "order-4", "lines": []},  # not a reservation
        {"order_id": "order-1", "lines": lines((beans, 2), (kettle, 1))},  # a repeat
        {"order_id": "order-5", "lines": lines((kettle, 1))},
    ]
    response = order_service.post(f"{RESERVATIONS}batch/", {"items": items})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["status"] for result in results] == [201, 409, 400, 201, 201]
    # Each as the routes answer it: what was held reads back the same, a repeat replays.
    assert results[0]["body"] == order_service.get(f"{RESERVATIONS}order-2/").json()
    assert results[0]["body"]["lines"] == [{"product_id": beans.pk, "quantity": 2}]
    assert results[1]["body"]["error"]["code"] == "insufficient_stock"
    assert results[1]["body"]["error"]["details"] == {
        "unavailable": [{"product_id": kettle.pk, "requested": 5, "available": 1}]
    }
    assert results[2]["body"]["error"]["code"] == "validation_error"
    assert "lines" in results[2]["body"]["error"]["details"]
    assert results[3]["body"] == reserved
    assert results[4]["body"] == order_service.get(f"{RESERVATIONS}order-5/").json()
    # The refused items took nothing; the others took what they hold.
    assert (stock_of(beans), stock_of(kettle)) == (1, 0)
    assert sorted(StockReservation.objects.values_list("order_id", flat=True)) == [
        "order-1",
        "order-2",
        "order-5",
    ]


@pytest.mark.parametrize(
    "body",
    [{}, {"items": []}, {"items": ["order-1"]}, {"items": [{"order_id": "x"}] * 51}],
    ids=["no items", "empty", "not objects", "too many"],
)
def test_a_body_that_is_not_a_batch_is_400_and_reserves_nothing(
    order_service: Api, beans: Product, body: dict[str, Any]
) -> None:
    response = order_service.post(f"{RESERVATIONS}batch/", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "items" in response.json()["error"]["details"]
    assert not StockReservation.objects.exists()


# --- release -----------------------------------------------------------------


def test_release_returns_the_stock_once(
    order_service: Api, reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    first = order_service.post(f"{RESERVATIONS}order-1/release/")
    assert first.status_code == 200
    assert first.json() == {**reserved, "status": "RELEASED"}
    assert (stock_of(beans), stock_of(kettle)) == (5, 2)
    again = order_service.post(f"{RESERVATIONS}order-1/release/")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert (stock_of(beans), stock_of(kettle)) == (5, 2)


def test_reserve_after_release_is_409_and_takes_nothing(
    order_service: Api, reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    order_service.post(f"{RESERVATIONS}order-1/release/")
    response = order_service.post(
        RESERVATIONS, {"order_id": "order-1", "lines": lines((beans, 2), (kettle, 1))}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reservation_released"
    assert (stock_of(beans), stock_of(kettle)) == (5, 2)


def test_release_of_an_unknown_order_is_404(order_service: Api, db: None) -> None:
    response = order_service.post(f"{RESERVATIONS}nope/release/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "reservation_not_found"
    assert response.json()["error"]["details"] == {"order_id": "nope"}


def test_reserve_after_the_release_of_an_unknown_order_is_409_order_compensated(
    order_service: Api, beans: Product, stock_of: StockOf
) -> None:
    assert order_service.post(f"{RESERVATIONS}order-9/release/").status_code == 404

    response = order_service.post(RESERVATIONS, {"order_id": "order-9", "lines": lines((beans, 2))})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_compensated"
    assert response.json()["error"]["details"] == {"order_id": "order-9"}
    assert stock_of(beans) == 5
    assert order_service.post(f"{RESERVATIONS}order-9/release/").status_code == 404


def test_release_after_commit_is_409_and_keeps_the_stock_taken(
    order_service: Api, reserved: dict[str, Any], beans: Product, stock_of: StockOf
) -> None:
    assert order_service.post(f"{RESERVATIONS}order-1/commit/").status_code == 200
    response = order_service.post(f"{RESERVATIONS}order-1/release/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reservation_committed"
    assert stock_of(beans) == 3
    assert StockReservation.objects.get().status == ReservationStatus.COMMITTED


# --- commit ------------------------------------------------------------------


def test_commit_is_idempotent(
    order_service: Api, reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    first = order_service.post(f"{RESERVATIONS}order-1/commit/")
    assert first.status_code == 200
    assert first.json() == {**reserved, "status": "COMMITTED"}
    again = order_service.post(f"{RESERVATIONS}order-1/commit/")
    assert (again.status_code, again.json()) == (200, first.json())
    assert (stock_of(beans), stock_of(kettle)) == (3, 1)


def test_reserve_after_commit_replays_the_committed_reservation(
    order_service: Api, reserved: dict[str, Any], beans: Product, kettle: Product, stock_of: StockOf
) -> None:
    order_service.post(f"{RESERVATIONS}order-1/commit/")
    response = order_service.post(
        RESERVATIONS, {"order_id": "order-1", "lines": lines((beans, 2), (kettle, 1))}
    )
    assert response.status_code == 201
    assert response.json() == {**reserved, "status": "COMMITTED"}
    assert (stock_of(beans), stock_of(kettle)) == (3, 1)


def test_commit_after_release_is_409(
    order_service: Api, reserved: dict[str, Any], beans: Product, stock_of: StockOf
) -> None:
    order_service.post(f"{RESERVATIONS}order-1/release/")
    response = order_service.post(f"{RESERVATIONS}order-1/commit/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reservation_released"
    assert StockReservation.objects.get().status == ReservationStatus.RELEASED
    assert stock_of(beans) == 5


def test_commit_of_an_unknown_order_is_404(order_service: Api, db: None) -> None:
    response = order_service.post(f"{RESERVATIONS}nope/commit/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "reservation_not_found"
