from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from catalog.models import Category, Product, StockLevel

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_keeps_moved_stock() -> None:
    call_command("seed_demo")
    assert sorted(Category.objects.values_list("slug", flat=True)) == ["brewing", "coffee", "tea"]
    assert Product.objects.count() == 10
    assert set(Product.objects.values_list("currency", flat=True)) == {"EUR"}
    assert list(StockLevel.objects.filter(quantity=0).values_list("product__sku", flat=True)) == [
        "TEA-ROO-100"
    ]
    assert StockLevel.objects.count() == 10
    assert Product.objects.get(sku="GEAR-GRIND").price == Decimal("79.00")

    StockLevel.objects.filter(product__sku="GEAR-GRIND").update(quantity=1)
    call_command("seed_demo")
    assert Product.objects.count() == 10
    assert Category.objects.count() == 3
    assert StockLevel.objects.get(product__sku="GEAR-GRIND").quantity == 1
