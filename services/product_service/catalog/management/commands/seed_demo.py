"""Demo catalogue for `make up`: a few categories and EUR products with stock.

Idempotent: categories are keyed by slug and products by SKU; rows that
already exist (and their stock, which orders may have moved since) are left
as they are.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.models import Category, Product, StockLevel, StockMovement, StockMovementKind

CATEGORIES = {
    "coffee": "Coffee",
    "tea": "Tea",
    "brewing": "Brewing gear",
}

# sku, name, description, price, category slug, stock
PRODUCTS: list[tuple[str, str, str, str, str, int]] = [
    (
        "COF-ETH-250",
        "Ethiopia Yirgacheffe 250 g",
        "Floral, citrus, light roast whole beans.",
        "12.90",
        "coffee",
        40,
    ),
    ("COF-COL-250", "Colombia Huila 250 g", "Caramel and red apple, medium roast.", "11.50", "coffee", 35),
    (
        "COF-ESP-1000",
        "House espresso blend 1 kg",
        "Chocolate and hazelnut, dark roast.",
        "29.00",
        "coffee",
        20,
    ),
    ("COF-DEC-250", "Decaf Brazil 250 g", "Swiss-water decaf, nutty and sweet.", "10.90", "coffee", 15),
    ("TEA-SEN-100", "Sencha 100 g", "Japanese green tea, grassy and bright.", "9.50", "tea", 30),
    ("TEA-ASS-100", "Assam breakfast 100 g", "Malty black tea for milk.", "7.90", "tea", 25),
    ("TEA-ROO-100", "Rooibos vanilla 100 g", "Caffeine-free, naturally sweet.", "6.90", "tea", 0),
    ("GEAR-V60", "Pour-over dripper V60", "Ceramic cone dripper, size 02.", "24.00", "brewing", 10),
    ("GEAR-GRIND", "Hand grinder", "Conical steel burrs, 30 g capacity.", "79.00", "brewing", 5),
    (
        "GEAR-KETTLE",
        "Gooseneck kettle 1 l",
        "Stainless steel, thermometer in the lid.",
        "45.00",
        "brewing",
        8,
    ),
]


class Command(BaseCommand):
    help = "Seeds the demo catalogue (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        categories = {}
        for slug, name in CATEGORIES.items():
            categories[slug], _ = Category.objects.get_or_create(slug=slug, defaults={"name": name})
        created = 0
        for sku, name, description, price, category, stock in PRODUCTS:
            product, was_created = Product.objects.get_or_create(
                sku=sku,
                defaults={
                    "name": name,
                    "description": description,
                    "price": Decimal(price),
                    "currency": "EUR",
                    "category": categories[category],
                },
            )
            _, stock_created = StockLevel.objects.get_or_create(product=product, defaults={"quantity": stock})
            if stock_created and stock:
                # The opening count, so the stock ledger explains the quantity.
                StockMovement.objects.create(product=product, kind=StockMovementKind.ADJUST, delta=stock)
            created += int(was_created)
        self.stdout.write(
            f"seed_demo: {len(CATEGORIES)} categories, {len(PRODUCTS)} products ({created} new)"
        )
