"""The database itself refuses what must never be stored."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from catalog.models import Product, StockLevel, StockReservation

from .conftest import ProductFactory

pytestmark = pytest.mark.django_db


def test_stock_can_never_go_negative(make_product: ProductFactory) -> None:
    product = make_product(stock=1)
    with pytest.raises(IntegrityError, match="catalog_stock_quantity_non_negative"), transaction.atomic():
        StockLevel.objects.filter(product=product).update(quantity=F("quantity") - 2)
    assert StockLevel.objects.get(product=product).quantity == 1


@pytest.mark.parametrize("price", ["0.00", "-1.00"])
def test_price_must_be_positive(make_product: ProductFactory, price: str) -> None:
    product = make_product(price="5.00")
    with pytest.raises(IntegrityError, match="catalog_product_price_positive"), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(price=Decimal(price))
    product.refresh_from_db()
    assert product.price == Decimal("5.00")


def test_sku_is_unique(make_product: ProductFactory) -> None:
    make_product(sku="ONE")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_product(sku="ONE")
    assert Product.objects.count() == 1


def test_one_reservation_per_order(db: None) -> None:
    StockReservation.objects.create(order_id="order-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        StockReservation.objects.create(order_id="order-1")
    assert StockReservation.objects.count() == 1
