"""The saga's event handlers: order.created → reserve, order.cancelled → release,
order.confirmed → commit; each effect with the event it publishes, repeats and no-ops."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import catalog.handlers  # noqa: F401 - registers the handlers
from catalog import services
from catalog.models import Product, ReservationStatus, StockReservation
from catalog.selectors import RequestedLine
from comptoir.events import OutboxMessage, handlers_for
from comptoir.events.testing import deliver, make_envelope, published

from .conftest import ProductFactory

pytestmark = pytest.mark.django_db

StockOf = Callable[[Product], int]


@pytest.fixture
def order_created() -> Callable[..., dict[str, Any]]:
    """An order.created payload for `lines` [(product, quantity), ...]."""

    def build(lines: list[tuple[Product, int]], *, order_id: str | None = None) -> dict[str, Any]:
        return {
            "order_id": order_id or str(uuid.uuid4()),
            "user_id": "2",
            "lines": [
                {"product_id": str(product.pk), "quantity": quantity, "unit_price": str(product.price)}
                for product, quantity in lines
            ],
            "amount": "39.80",
            "currency": "EUR",
        }

    return build


def cancelled(order_id: str, reason: str = "insufficient_funds") -> dict[str, Any]:
    return {"order_id": order_id, "user_id": "2", "reason": reason}


def confirmed(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "user_id": "2", "amount": "39.80", "currency": "EUR"}


def reserve(product: Product, quantity: int, order_id: str) -> StockReservation:
    return services.reservation_create(order_id=order_id, lines=[RequestedLine(product.pk, quantity)])


# --- order.created -------------------------------------------------------------------


def test_order_created_reserves_every_line_and_publishes_stock_reserved(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup, mug = make_product(stock=5), make_product(stock=3)
    payload = order_created([(mug, 3), (cup, 2)])

    with CaptureQueriesContext(connection) as queries:
        deliver(make_envelope("order.created", payload))

    # stock.reserved carries the lines the reservation wrote: none is read back.
    assert not [
        q for q in queries.captured_queries if q["sql"].startswith("SELECT") and "reservationline" in q["sql"]
    ]

    reservation = StockReservation.objects.get(order_id=payload["order_id"])
    assert reservation.status == ReservationStatus.RESERVED
    assert (stock_of(cup), stock_of(mug)) == (3, 0)
    assert published() == [
        {
            "order_id": payload["order_id"],
            "reservation_id": str(reservation.pk),
            "lines": [
                {"product_id": str(cup.pk), "quantity": 2},
                {"product_id": str(mug.pk), "quantity": 3},
            ],
            "user_id": "2",
            "amount": "39.80",
            "currency": "EUR",
        }
    ]
    row = OutboxMessage.objects.get()
    assert (row.event_type, row.key) == ("stock.reserved", payload["order_id"])


def test_order_created_twice_reserves_once_and_publishes_once(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup = make_product(stock=5)
    event = make_envelope("order.created", order_created([(cup, 2)]))

    deliver(event)
    deliver(event)
    deliver(make_envelope("order.created", event.payload))  # the same order under another event id

    assert stock_of(cup) == 3
    assert StockReservation.objects.count() == 1
    assert [row.event_type for row in OutboxMessage.objects.all()] == ["stock.reserved"]


def test_order_created_without_enough_stock_holds_nothing_and_publishes_stock_rejected(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup, mug = make_product(stock=5), make_product(stock=1)
    payload = order_created([(cup, 2), (mug, 2)])

    deliver(make_envelope("order.created", payload))

    assert (stock_of(cup), stock_of(mug)) == (5, 1)  # all lines or none
    assert not StockReservation.objects.filter(order_id=payload["order_id"]).exists()
    assert published() == [
        {
            "order_id": payload["order_id"],
            "reason": "insufficient_stock",
            "unavailable": [{"product_id": str(mug.pk), "requested": 2, "available": 1}],
        }
    ]


def test_order_created_at_a_price_the_catalogue_no_longer_asks_holds_nothing_and_is_rejected(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup, mug = make_product(stock=5, price="4.00"), make_product(stock=5, price="6.00")
    payload = order_created([(cup, 2), (mug, 1)])  # placed at 4.00 and 6.00
    Product.objects.filter(pk=mug.pk).update(price="6.50")

    deliver(make_envelope("order.created", payload))

    assert (stock_of(cup), stock_of(mug)) == (5, 5)
    assert not StockReservation.objects.filter(order_id=payload["order_id"]).exists()
    assert published() == [{"order_id": payload["order_id"], "reason": "price_changed", "unavailable": []}]


def test_order_created_in_another_currency_than_the_products_is_rejected_as_a_price_change(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup = make_product(stock=5, price="4.00")
    payload = order_created([(cup, 1)]) | {"currency": "USD"}

    deliver(make_envelope("order.created", payload))

    assert stock_of(cup) == 5
    assert published("stock.rejected")[0]["reason"] == "price_changed"


def test_order_created_with_one_product_at_two_prices_is_rejected(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup = make_product(stock=5, price="4.00")
    payload = order_created([(cup, 1), (cup, 1)])
    payload["lines"][1]["unit_price"] = "1.00"

    deliver(make_envelope("order.created", payload))

    assert stock_of(cup) == 5
    assert published("stock.rejected")[0]["unavailable"] == [
        {"product_id": str(cup.pk), "requested": 1, "available": 0},
        {"product_id": str(cup.pk), "requested": 1, "available": 0},
    ]


def test_a_refusal_rolls_back_only_its_own_work_inside_the_handlers_transaction(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    """What the consumer committed before (another order's reservation) survives the refusal."""
    cup = make_product(stock=2)
    first, second = order_created([(cup, 2)]), order_created([(cup, 1)])
    handler = handlers_for()["order.created"]
    with transaction.atomic():  # one consumer batch
        handler(make_envelope("order.created", first))
        handler(make_envelope("order.created", second))

    assert stock_of(cup) == 0
    assert list(StockReservation.objects.values_list("order_id", flat=True)) == [first["order_id"]]
    assert [row.event_type for row in OutboxMessage.objects.order_by("id")] == [
        "stock.reserved",
        "stock.rejected",
    ]


def test_order_created_for_an_unknown_or_inactive_product_is_rejected(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup, retired = make_product(stock=5), make_product(stock=5, is_active=False)
    payload = order_created([(cup, 1), (retired, 1)])

    deliver(make_envelope("order.created", payload))

    assert (stock_of(cup), stock_of(retired)) == (5, 5)
    assert published("stock.rejected") == [
        {
            "order_id": payload["order_id"],
            "reason": "insufficient_stock",
            "unavailable": [{"product_id": str(retired.pk), "requested": 1, "available": 0}],
        }
    ]
    gone = order_created([(cup, 1)])
    gone["lines"][0]["product_id"] = "999999"
    deliver(make_envelope("order.created", gone))
    assert published("stock.rejected")[1]["unavailable"] == [
        {"product_id": "999999", "requested": 1, "available": 0}
    ]
    assert stock_of(cup) == 5


def test_order_created_naming_a_product_id_that_is_not_ours_is_rejected(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup = make_product(stock=5)
    payload = order_created([(cup, 1)])
    payload["lines"].append({"product_id": "sku-abc", "quantity": 2, "unit_price": "1.00"})

    deliver(make_envelope("order.created", payload))

    assert stock_of(cup) == 5
    assert published("stock.rejected")[0]["unavailable"] == [
        {"product_id": str(cup.pk), "requested": 1, "available": 0},
        {"product_id": "sku-abc", "requested": 2, "available": 0},
    ]


def test_order_created_with_one_product_on_two_lines_reserves_their_sum(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup = make_product(stock=5)

    deliver(make_envelope("order.created", order_created([(cup, 1), (cup, 2)])))

    assert stock_of(cup) == 2
    assert published("stock.reserved")[0]["lines"] == [{"product_id": str(cup.pk), "quantity": 3}]


def test_order_created_after_the_orders_reservation_was_released_is_ignored(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    cup = make_product(stock=5)
    payload = order_created([(cup, 2)])
    reserve(cup, 2, payload["order_id"])
    services.reservation_release(order_id=payload["order_id"])

    deliver(make_envelope("order.created", payload))

    assert stock_of(cup) == 5
    assert StockReservation.objects.get().status == ReservationStatus.RELEASED
    assert OutboxMessage.objects.count() == 0


# --- order.cancelled -------------------------------------------------------------------


def test_order_cancelled_releases_held_stock_and_publishes_stock_released(
    make_product: ProductFactory, stock_of: StockOf
) -> None:
    cup = make_product(stock=5)
    reservation = reserve(cup, 2, "order-1")

    event = make_envelope("order.cancelled", cancelled("order-1"))
    deliver(event)
    deliver(event)  # redelivered: nothing more

    assert stock_of(cup) == 5
    assert StockReservation.objects.get().status == ReservationStatus.RELEASED
    assert published() == [
        {"order_id": "order-1", "reservation_id": str(reservation.pk), "reason": "insufficient_funds"}
    ]


def test_order_cancelled_without_a_reservation_is_a_no_op(
    make_product: ProductFactory, stock_of: StockOf
) -> None:
    cup = make_product(stock=5)

    deliver(make_envelope("order.cancelled", cancelled("never-reserved", "insufficient_stock")))

    assert stock_of(cup) == 5
    # Only a tombstone, which refuses a reservation of the order still on its way.
    (tombstone,) = StockReservation.objects.all()
    assert (tombstone.order_id, tombstone.status, tombstone.lines.count()) == (
        "never-reserved",
        ReservationStatus.RELEASED,
        0,
    )
    assert OutboxMessage.objects.count() == 0


def test_order_created_after_order_cancelled_reserves_nothing_and_publishes_nothing(
    make_product: ProductFactory, stock_of: StockOf, order_created: Callable[..., dict[str, Any]]
) -> None:
    # The cancellation (e.g. the order's deadline) overtook order.created.
    cup = make_product(stock=5)
    payload = order_created([(cup, 2)])
    deliver(make_envelope("order.cancelled", cancelled(payload["order_id"], "system_error")))

    deliver(make_envelope("order.created", payload))

    assert stock_of(cup) == 5
    assert StockReservation.objects.get().lines.count() == 0
    assert OutboxMessage.objects.count() == 0


def test_order_cancelled_after_the_orchestrator_released_is_a_no_op(
    make_product: ProductFactory, stock_of: StockOf
) -> None:
    cup = make_product(stock=5)
    reserve(cup, 2, "order-1")
    services.reservation_release(order_id="order-1")  # over HTTP, by the orchestrator

    deliver(make_envelope("order.cancelled", cancelled("order-1")))

    assert stock_of(cup) == 5
    assert OutboxMessage.objects.count() == 0


def test_order_cancelled_for_a_committed_reservation_changes_nothing(
    make_product: ProductFactory, stock_of: StockOf
) -> None:
    cup = make_product(stock=5)
    reserve(cup, 2, "order-1")
    services.reservation_commit(order_id="order-1")

    deliver(make_envelope("order.cancelled", cancelled("order-1")))

    assert stock_of(cup) == 3
    assert StockReservation.objects.get().status == ReservationStatus.COMMITTED
    assert OutboxMessage.objects.count() == 0


# --- order.confirmed -------------------------------------------------------------------


def test_order_confirmed_commits_the_held_reservation(
    make_product: ProductFactory, stock_of: StockOf
) -> None:
    cup = make_product(stock=5)
    reserve(cup, 2, "order-1")

    event = make_envelope("order.confirmed", confirmed("order-1"))
    deliver(event)
    deliver(event)

    assert StockReservation.objects.get().status == ReservationStatus.COMMITTED
    assert stock_of(cup) == 3
    assert OutboxMessage.objects.count() == 0  # committing publishes nothing


@pytest.mark.parametrize("before", ["nothing", "committed", "released"])
def test_order_confirmed_with_nothing_held_is_a_no_op(
    make_product: ProductFactory, stock_of: StockOf, before: str
) -> None:
    cup = make_product(stock=5)
    if before != "nothing":
        reserve(cup, 2, "order-1")
        if before == "committed":
            services.reservation_commit(order_id="order-1")
        else:
            services.reservation_release(order_id="order-1")

    deliver(make_envelope("order.confirmed", confirmed("order-1")))

    expected = {"nothing": (5, None), "committed": (3, "COMMITTED"), "released": (5, "RELEASED")}[before]
    assert (stock_of(cup), StockReservation.objects.values_list("status", flat=True).first()) == expected
    assert OutboxMessage.objects.count() == 0
