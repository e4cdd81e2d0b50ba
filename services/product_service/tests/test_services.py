"""Service functions called directly (as Kafka handlers will call them later)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from catalog import services
from catalog.errors import CatalogErrorCode
from catalog.models import ReservationStatus, StockLevel, StockReservation
from catalog.selectors import RequestedLine
from comptoir import ConflictError, NotFoundError

from .conftest import ProductFactory

pytestmark = pytest.mark.django_db


def test_reserve_release_commit_cycle(make_product: ProductFactory) -> None:
    product = make_product(stock=3)
    reservation = services.reservation_create(order_id="o-1", lines=[RequestedLine(product.pk, 2)])
    assert reservation.status == ReservationStatus.RESERVED
    assert StockLevel.objects.get(product=product).quantity == 1
    assert services.reservation_release(order_id="o-1").status == ReservationStatus.RELEASED
    assert StockLevel.objects.get(product=product).quantity == 3


def test_insufficient_stock_names_every_short_line(make_product: ProductFactory) -> None:
    short, plenty = make_product(stock=1), make_product(stock=9)
    with pytest.raises(ConflictError) as raised:
        services.reservation_create(
            order_id="o-1", lines=[RequestedLine(plenty.pk, 2), RequestedLine(short.pk, 2)]
        )
    assert raised.value.code == CatalogErrorCode.INSUFFICIENT_STOCK
    assert raised.value.details == {"unavailable": [{"product_id": short.pk, "requested": 2, "available": 1}]}
    assert StockLevel.objects.get(product=plenty).quantity == 9
    assert not StockReservation.objects.exists()


@pytest.mark.django_db(transaction=True)  # its own transaction, as over HTTP
def test_a_reservation_takes_each_lines_units_in_one_statement(make_product: ProductFactory) -> None:
    first, second = make_product(stock=5), make_product(stock=5)
    with CaptureQueriesContext(connection) as queries:
        services.reservation_create(
            order_id="o-1", lines=[RequestedLine(second.pk, 2), RequestedLine(first.pk, 1)]
        )
    statements = [q["sql"] for q in queries.captured_queries]
    # The order id claimed with ON CONFLICT (no savepoint around it), the
    # products read, one conditional UPDATE per line in product-id order, the
    # lines with their movements in one statement: no locking read of the stock.
    assert statements[0] == "BEGIN"
    assert "ON CONFLICT (order_id) DO NOTHING" in statements[1]
    assert not [sql for sql in statements if "SAVEPOINT" in sql or "FOR UPDATE" in sql]
    updates = [sql for sql in statements if sql.startswith('UPDATE "catalog_stocklevel"')]
    assert len(updates) == 2
    assert len([sql for sql in statements if '"catalog_stockmovement"' in sql]) == 1
    assert [StockLevel.objects.get(product=p).quantity for p in (first, second)] == [4, 3]
    assert (
        services.reservation_hold(
            order_id="o-1", lines=[RequestedLine(first.pk, 1), RequestedLine(second.pk, 2)]
        )[1]
        is False
    )


def test_commit_and_release_inside_a_transaction_take_no_savepoint(make_product: ProductFactory) -> None:
    product = make_product(stock=5)
    held, _other = (
        services.reservation_create(order_id=order_id, lines=[RequestedLine(product.pk, 1)])
        for order_id in ("o-1", "o-2")
    )
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:  # as the consumer's batch
        assert services.reservation_commit_if_held(order_id="o-1") == held.pk
        assert services.reservation_commit_if_held(order_id="o-1") is None  # committed already
        assert services.reservation_release_if_held(order_id="o-2") is not None
    assert not [q["sql"] for q in queries.captured_queries if "SAVEPOINT" in q["sql"]]
    assert StockLevel.objects.get(product=product).quantity == 4
    assert StockReservation.objects.get(pk=held.pk).status == ReservationStatus.COMMITTED


def test_a_product_without_a_stock_row_has_none_to_reserve(make_product: ProductFactory) -> None:
    product = make_product(stock=0)
    StockLevel.objects.filter(product=product).delete()
    with pytest.raises(ConflictError) as raised:
        services.reservation_create(order_id="o-1", lines=[RequestedLine(product.pk, 1)])
    assert raised.value.details == {
        "unavailable": [{"product_id": product.pk, "requested": 1, "available": 0}]
    }


def test_stock_set_creates_a_missing_stock_row(make_product: ProductFactory) -> None:
    product = make_product()
    StockLevel.objects.filter(product=product).delete()
    assert services.stock_set(product_id=product.pk, quantity=4).quantity == 4
    assert StockLevel.objects.get(product=product).quantity == 4


def test_programming_errors_are_refused_before_any_write(make_product: ProductFactory) -> None:
    product = make_product(stock=3)
    with pytest.raises(ValueError, match="appears twice"):
        services.reservation_create(
            order_id="o-1", lines=[RequestedLine(product.pk, 1), RequestedLine(product.pk, 1)]
        )
    with pytest.raises(ValueError, match="at least one line"):
        services.reservation_create(order_id="o-1", lines=[])
    with pytest.raises(ValueError, match="not editable"):
        services.product_update(product_id=product.pk, changes={"id": 99})
    with pytest.raises(ValueError, match="negative"):
        services.stock_set(product_id=product.pk, quantity=-1)
    assert not StockReservation.objects.exists()
    assert StockLevel.objects.get(product=product).quantity == 3


def test_release_of_an_unknown_order(db: None) -> None:
    with pytest.raises(NotFoundError) as raised:
        services.reservation_release(order_id="missing")
    assert raised.value.code == CatalogErrorCode.RESERVATION_NOT_FOUND


def test_a_reservation_after_the_release_of_an_unknown_order_is_refused_and_holds_nothing(
    make_product: ProductFactory,
) -> None:
    product = make_product(stock=3)
    with pytest.raises(NotFoundError):
        services.reservation_release(order_id="o-1")

    with pytest.raises(ConflictError) as refused:
        services.reservation_create(order_id="o-1", lines=[RequestedLine(product.pk, 2)])

    assert (refused.value.code, refused.value.status_code) == (CatalogErrorCode.ORDER_COMPENSATED, 409)
    assert refused.value.details == {"order_id": "o-1"}
    assert StockLevel.objects.get(product=product).quantity == 3
    tombstone = StockReservation.objects.get(order_id="o-1")
    assert (tombstone.status, tombstone.lines.count()) == (ReservationStatus.RELEASED, 0)
    # Still nothing to release, commit or reserve for that order; other orders are untouched.
    with pytest.raises(NotFoundError):
        services.reservation_release(order_id="o-1")
    with pytest.raises(ConflictError):
        services.reservation_commit(order_id="o-1")
    assert services.reservation_create(order_id="o-2", lines=[RequestedLine(product.pk, 2)]).status == (
        ReservationStatus.RESERVED
    )
