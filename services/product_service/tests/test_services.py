"""Service functions called directly (as Kafka handlers will call them later)."""

from __future__ import annotations

import pytest

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
