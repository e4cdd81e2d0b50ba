"""The append-only stock ledger, opened with what the rows already say.

For every existing product: one HOLD per reservation line and one RELEASE per
line of a released reservation (as if they had been written at the time), and
one opening ADJUST that makes the movements add up to today's quantity. After
this, `quantity == sum(movements)` and `quantity == adjustments - held -
committed` hold for every product, as they will for every later change.
"""

import django.db.models.deletion
from django.db import migrations, models


def open_ledger(apps, schema_editor):  # type: ignore[no-untyped-def]
    StockLevel = apps.get_model("catalog", "StockLevel")
    StockReservationLine = apps.get_model("catalog", "StockReservationLine")
    StockMovement = apps.get_model("catalog", "StockMovement")
    movements = []
    out_units: dict[int, int] = {}
    for line in StockReservationLine.objects.select_related("reservation").iterator():
        movements.append(
            StockMovement(
                product_id=line.product_id, kind="HOLD", delta=-line.quantity, reservation_id=line.reservation_id
            )
        )
        if line.reservation.status == "RELEASED":
            movements.append(
                StockMovement(
                    product_id=line.product_id,
                    kind="RELEASE",
                    delta=line.quantity,
                    reservation_id=line.reservation_id,
                )
            )
        else:
            out_units[line.product_id] = out_units.get(line.product_id, 0) + line.quantity
    for stock in StockLevel.objects.iterator():
        opening = stock.quantity + out_units.get(stock.product_id, 0)
        if opening:
            movements.append(StockMovement(product_id=stock.product_id, kind="ADJUST", delta=opening))
    StockMovement.objects.bulk_create(movements, batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="StockMovement",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("ADJUST", "Stock count (staff, seed)"),
                            ("HOLD", "Held for a reservation"),
                            ("RELEASE", "Released by a reservation"),
                        ],
                        max_length=16,
                    ),
                ),
                ("delta", models.IntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "product",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="stock_movements",
                        to="catalog.product",
                    ),
                ),
                (
                    "reservation",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="movements",
                        to="catalog.stockreservation",
                    ),
                ),
            ],
            options={
                "ordering": ("id",),
                "indexes": [models.Index(fields=["product", "kind"], name="catalog_movement_product_kind")],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("kind", "ADJUST"), ("reservation__isnull", True)),
                            models.Q(("delta__lt", 0), ("kind", "HOLD"), ("reservation__isnull", False)),
                            models.Q(("delta__gt", 0), ("kind", "RELEASE"), ("reservation__isnull", False)),
                            _connector="OR",
                        ),
                        name="catalog_stock_movement_sign_matches_kind",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("reservation__isnull", False)),
                        fields=("reservation", "product", "kind"),
                        name="catalog_stock_movement_once_per_reservation_line",
                    ),
                ],
            },
        ),
        migrations.RunPython(open_ledger, migrations.RunPython.noop),
    ]
