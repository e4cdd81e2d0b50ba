"""Orders, their lines and their status history.

An order belongs to the user id in the caller's token (users live in
user_service, so there is no foreign key). Prices are copied from
product_service's quote when the order is placed, so an order keeps what the
customer was charged even if the catalogue changes later. The status only
moves through `orders.services.order_transition`, which writes one
`OrderStatusChange` per move.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    CONFIRMED = "CONFIRMED", "Confirmed"
    CANCELLED = "CANCELLED", "Cancelled"


class CancelReason(models.TextChoices):
    """Why an order ended CANCELLED: stable codes the saga and the mails use."""

    USER_INACTIVE = "user_inactive", "User unknown or inactive"
    INSUFFICIENT_STOCK = "insufficient_stock", "Insufficient stock"
    INSUFFICIENT_FUNDS = "insufficient_funds", "Insufficient funds"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    SYSTEM_ERROR = "system_error", "A step failed for a technical reason"


class SagaMode(models.TextChoices):
    """How the saga that settles the order runs (`SAGA_MODE`); empty until it starts."""

    ORCHESTRATION = "orchestration", "Orchestration"
    CHOREOGRAPHY = "choreography", "Choreography"


class Order(models.Model):
    user_id = models.PositiveBigIntegerField(help_text="Owner: the user id of the token that placed it.")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    cancel_reason = models.CharField(max_length=64, choices=CancelReason.choices, null=True, blank=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # sha256 of the normalised lines of the request that carried the key: a
    # replay with another body is refused instead of answered with this order.
    idempotency_fingerprint = models.CharField(max_length=64, null=True, blank=True)
    # Saga state (orchestrator step, saga id...) is added by the saga issue;
    # the mode is recorded here so both styles can share the table.
    saga_mode = models.CharField(max_length=16, choices=SagaMode.choices, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("user_id", "-created_at"), name="orders_order_user_recent"),)
        constraints = (
            models.UniqueConstraint(
                fields=("user_id", "idempotency_key"),
                condition=Q(idempotency_key__isnull=False),
                name="orders_order_unique_idempotency_key_per_user",
            ),
            models.CheckConstraint(condition=Q(total__gte=Decimal("0")), name="orders_order_total_gte_0"),
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="orders_order_status_valid"
            ),
            # A reason exactly when cancelled.
            models.CheckConstraint(
                condition=(
                    Q(status=OrderStatus.CANCELLED, cancel_reason__isnull=False)
                    | (~Q(status=OrderStatus.CANCELLED) & Q(cancel_reason__isnull=True))
                ),
                name="orders_order_cancel_reason_iff_cancelled",
            ),
        )

    def __str__(self) -> str:
        return f"order {self.pk} ({self.status})"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product_id = models.PositiveBigIntegerField()
    product_name = models.CharField(max_length=255)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ("id",)
        constraints = (
            models.UniqueConstraint(fields=("order", "product_id"), name="orders_orderline_unique_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orders_orderline_quantity_gt_0"),
            models.CheckConstraint(
                condition=Q(unit_price__gte=Decimal("0")), name="orders_orderline_unit_price_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(line_total=F("unit_price") * F("quantity")),
                name="orders_orderline_total_is_price_times_quantity",
            ),
        )

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_name}"


class OrderStatusChange(models.Model):
    """One move of an order's status; the first row has no `from_status`."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="status_history")
    from_status = models.CharField(max_length=16, choices=OrderStatus.choices, null=True, blank=True)
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    reason = models.CharField(max_length=64, null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("at", "id")

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"
