"""0002_stockmovement opens the stock ledger from the rows already there: after
it, every product's movements add up to its quantity, and its adjustments minus
the units held and committed do too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("catalog", "0001_initial")]
AFTER = [("catalog", "0002_stockmovement")]


@pytest.fixture
def migrator(transactional_db: None) -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    executor.loader.build_graph()
    yield executor
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _apps(executor: MigrationExecutor, target: list[tuple[str, str]]) -> Any:
    return executor.loader.project_state(target).apps


def test_the_ledger_is_opened_from_stock_levels_and_reservations(migrator: MigrationExecutor) -> None:
    old = _apps(migrator, BEFORE)
    category = old.get_model("catalog", "Category").objects.create(name="Coffee", slug="coffee")
    Product = old.get_model("catalog", "Product")
    beans = Product.objects.create(sku="BEANS", name="Beans", price="1.00", category=category)
    kettle = Product.objects.create(sku="KETTLE", name="Kettle", price="2.00", category=category)
    empty = Product.objects.create(sku="EMPTY", name="Empty", price="3.00", category=category)
    StockLevel = old.get_model("catalog", "StockLevel")
    StockLevel.objects.create(product=beans, quantity=5)  # 10 received, 2 held, 3 sold
    StockLevel.objects.create(product=kettle, quantity=0)  # 1 received, 1 sold
    StockLevel.objects.create(product=empty, quantity=0)
    Reservation = old.get_model("catalog", "StockReservation")
    Line = old.get_model("catalog", "StockReservationLine")
    for order_id, status, lines in [
        ("o-1", "RESERVED", [(beans, 2)]),
        ("o-2", "COMMITTED", [(beans, 3), (kettle, 1)]),
        ("o-3", "RELEASED", [(beans, 4)]),
    ]:
        reservation = Reservation.objects.create(order_id=order_id, status=status)
        for product, quantity in lines:
            Line.objects.create(reservation=reservation, product=product, quantity=quantity)

    migrator.loader.build_graph()
    migrator.migrate(AFTER)

    Movement = _apps(migrator, AFTER).get_model("catalog", "StockMovement")
    moves = {
        sku: sorted(
            Movement.objects.filter(product__sku=sku).values_list("kind", "delta", "reservation__order_id"),
            key=str,
        )
        for sku in ("BEANS", "KETTLE", "EMPTY")
    }
    assert moves == {
        "BEANS": sorted(
            [
                ("ADJUST", 10, None),
                ("HOLD", -2, "o-1"),
                ("HOLD", -3, "o-2"),
                ("HOLD", -4, "o-3"),
                ("RELEASE", 4, "o-3"),
            ],
            key=str,
        ),
        "KETTLE": sorted([("ADJUST", 1, None), ("HOLD", -1, "o-2")], key=str),
        "EMPTY": [],
    }
    assert sum(delta for _, delta, _ in moves["BEANS"]) == 5
