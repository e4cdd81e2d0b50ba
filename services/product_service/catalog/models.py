"""The catalogue (categories, products), stock levels and per-order stock reservations.

`StockLevel.quantity` is the quantity still available to sell: a reservation
takes units out of it at once, a release puts them back, a commit makes the
reservation final. The database refuses a negative quantity, so even a bug
in the locking could not oversell.

Every change of a quantity is explained by a `StockMovement` written in the
same transaction (append-only, like a wallet's ledger): a stock count by staff
(ADJUST), a hold for a reservation (HOLD, negative) and its release (RELEASE).
So the reconciliation auditor can check, per product, that the available
quantity is the sum of its movements, and that it equals the stock received
(the adjustments) minus the units held and committed by reservations.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gt=Decimal("0")), name="catalog_product_price_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["is_active", "price"], name="catalog_product_active_price"),
            models.Index(fields=["is_active", "created_at"], name="catalog_product_active_created"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class StockLevel(models.Model):
    product = models.OneToOneField(Product, on_delete=models.CASCADE, primary_key=True, related_name="stock")
    quantity = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=0), name="catalog_stock_quantity_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.quantity}"


class ReservationStatus(models.TextChoices):
    RESERVED = "RESERVED", "Reserved"
    RELEASED = "RELEASED", "Released"
    COMMITTED = "COMMITTED", "Committed"


class StockReservation(models.Model):
    """The stock held for one order; at most one per order id.

    A RELEASED reservation without lines is a tombstone: the order's stock was
    released before any was reserved (a compensation that found nothing), and
    the row's claim on the order id refuses every later reservation for it.
    """

    order_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.RESERVED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The lines already in hand: those `reservation_hold` has just written, so that
    # answering with them (the API's body, `stock.reserved`) reads nothing back, or a
    # page's lines read together (the auditor's pages); None: read them.
    held_lines: list[StockReservationLine] | None = None

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.order_id} {self.status}"

    @property
    def line_list(self) -> list[StockReservationLine]:
        """The reservation's lines by product id (those in hand, else read or prefetched).

        A property, not a method: a serializer field whose source is a method asks
        `inspect.signature` about it for every object it renders."""
        if self.held_lines is not None:
            return self.held_lines
        return list(self.lines.all())


class StockReservationLine(models.Model):
    # No index of its own: the unique (reservation, product) index serves lookups by reservation.
    reservation = models.ForeignKey(
        StockReservation, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="reservation_lines")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ("product_id",)
        constraints = [
            models.UniqueConstraint(
                fields=["reservation", "product"], name="catalog_reservation_line_unique"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="catalog_reservation_line_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} x {self.quantity}"


class StockMovementKind(models.TextChoices):
    ADJUST = "ADJUST", "Stock count (staff, seed)"
    HOLD = "HOLD", "Held for a reservation"
    RELEASE = "RELEASE", "Released by a reservation"


class StockMovement(models.Model):
    """An immutable change of a product's available quantity: positive in, negative out."""

    # Neither key has an index of its own: the (product, kind) index and the unique
    # (reservation, product, kind) one serve the lookups by product and by reservation.
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="stock_movements", db_index=False
    )
    kind = models.CharField(max_length=16, choices=StockMovementKind.choices)
    delta = models.IntegerField()
    reservation = models.ForeignKey(
        StockReservation,
        on_delete=models.PROTECT,
        related_name="movements",
        null=True,
        blank=True,
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind=StockMovementKind.ADJUST, reservation__isnull=True)
                    | Q(kind=StockMovementKind.HOLD, delta__lt=0, reservation__isnull=False)
                    | Q(kind=StockMovementKind.RELEASE, delta__gt=0, reservation__isnull=False)
                ),
                name="catalog_stock_movement_sign_matches_kind",
            ),
            # A reservation holds a product once and gives it back once, whatever retries happen.
            models.UniqueConstraint(
                fields=["reservation", "product", "kind"],
                condition=Q(reservation__isnull=False),
                name="catalog_stock_movement_once_per_reservation_line",
            ),
        ]
        indexes = [models.Index(fields=["product", "kind"], name="catalog_movement_product_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta:+d} on product {self.product_id}"
