"""Orders, their lines and their status history.

An order belongs to the user id in the caller's token (users live in
user_service, so there is no foreign key). Prices are copied from
product_service's quote when the order is placed, so an order keeps what the
customer was charged even if the catalogue changes later. The status only
moves through `orders.transitions.order_transition`, which writes one
`OrderStatusChange` per move.

The saga that settles an order keeps its state in `OrderSaga` (one row per
order: where it is, how often the current step was tried, what upstream gave
back) and its story in `SagaTimelineEntry` (one row per step outcome), which
`GET /api/orders/{id}/` shows as the order's timeline in both saga modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.db import connection, models
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
    PRICE_CHANGED = "price_changed", "A price changed before the stock was reserved"
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
    # The mode in force when the order was placed: an order in flight finishes
    # in that mode even if SAGA_MODE changes meanwhile.
    saga_mode = models.CharField(max_length=16, choices=SagaMode.choices, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(fields=("user_id", "-created_at"), name="orders_order_user_recent"),
            # The choreography deadline's sweep (and the auditor) look for old PENDING orders.
            models.Index(
                fields=("created_at",), condition=Q(status="PENDING"), name="orders_order_pending_created"
            ),
        )
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
    # No index of its own: the unique (order, product_id) index serves lookups by order.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False)
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


class SagaStep(models.TextChoices):
    """The saga's steps: four forward, two compensations, and the failed ending."""

    VERIFY_USER = "verify_user", "Verify the user"
    RESERVE_STOCK = "reserve_stock", "Reserve the stock"
    CHARGE_PAYMENT = "charge_payment", "Charge the payment"
    CONFIRM_ORDER = "confirm_order", "Confirm the order"
    REFUND_PAYMENT = "refund_payment", "Refund the payment"
    RELEASE_STOCK = "release_stock", "Release the stock"
    CANCEL_ORDER = "cancel_order", "Cancel the order"


class SagaStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running forward"
    COMPENSATING = "COMPENSATING", "Undoing what succeeded"
    COMPLETED = "COMPLETED", "Order confirmed"
    COMPENSATED = "COMPENSATED", "Order cancelled"


ACTIVE_SAGA_STATUSES = (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


@dataclass(frozen=True)
class Customer:
    """How to reach the order's customer, as user_service knows them."""

    email: str
    full_name: str


class OrderSaga(models.Model):
    """Where an order's saga stands. The orchestrator drives it from here, so a
    crashed or lost step resumes from the stored `current_step`; in choreography
    it only records what the events said (reservation and payment ids)."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, primary_key=True, related_name="saga")
    status = models.CharField(max_length=16, choices=SagaStatus.choices, default=SagaStatus.RUNNING)
    current_step = models.CharField(max_length=32, choices=SagaStep.choices, null=True, blank=True)
    # Runs of the current step so far (reset when the saga moves on).
    attempts = models.PositiveIntegerField(default=0)
    failure_reason = models.CharField(max_length=64, choices=CancelReason.choices, null=True, blank=True)
    # After a failure: the compensations to run, in order (then cancel_order).
    compensation_plan = models.JSONField(default=list, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    reservation_id = models.CharField(max_length=64, null=True, blank=True)
    payment_id = models.CharField(max_length=64, null=True, blank=True)
    # The customer's contact as user_service gave it when the saga verified the
    # user: it travels in order.confirmed / order.cancelled, so the mail needs no
    # second lookup ("" when unknown, e.g. a saga started by an earlier version;
    # the database's own default too, so that version can still write sagas).
    customer_email = models.CharField(max_length=254, blank=True, default="", db_default="")
    customer_name = models.CharField(max_length=200, blank=True, default="", db_default="")
    # When an active saga counts as stalled if it has not moved: the sweeper
    # re-enqueues its current step after this (pushed back by each attempt).
    stall_deadline = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The active sagas, for the sweeper (which then reads their stall deadlines):
        # an index on nothing a step changes, so the updates of a running saga (its
        # step, attempts, deadline) can be HOT (no index written) where its page
        # has room.
        indexes = (
            models.Index(
                fields=("order",),
                condition=Q(status__in=ACTIVE_SAGA_STATUSES),
                name="orders_saga_active",
            ),
        )
        constraints = (
            models.CheckConstraint(
                condition=Q(status__in=SagaStatus.values), name="orders_ordersaga_status_valid"
            ),
        )

    def __str__(self) -> str:
        return f"saga of order {self.order_id} ({self.status} at {self.current_step})"

    @property
    def customer(self) -> Customer | None:
        """The stored contact; None when none was stored."""
        return Customer(self.customer_email, self.customer_name) if self.customer_email else None


class TimelineStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    COMPENSATED = "compensated", "Compensated"


class SagaTimelineEntry(models.Model):
    """One outcome of one saga step; (order, step, status) is written at most
    once, so a re-run step or a redelivered event adds nothing."""

    # No index of its own: the unique (order, step, status) index serves lookups by order.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="timeline", db_index=False)
    step = models.CharField(max_length=32, choices=SagaStep.choices)
    status = models.CharField(max_length=16, choices=TimelineStatus.choices)
    error = models.CharField(max_length=500, null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("at", "id")
        constraints = (
            models.UniqueConstraint(
                fields=("order", "step", "status"), name="orders_timeline_unique_step_outcome"
            ),
        )
        verbose_name_plural = "saga timeline entries"

    def __str__(self) -> str:
        return f"{self.step} {self.status}"


class ReconciliationRun(models.Model):
    """The report of one run of the reconciliation auditor (`manage.py reconcile` or
    the beat task), kept so the operations console can show the last one."""

    finished_at = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.CharField(max_length=16, help_text="beat or command")
    total = models.PositiveIntegerField()
    violations = models.JSONField(help_text="violation kind -> count (every kind, zeros included)")
    samples = models.JSONField(help_text="violation kind -> the first offending ids")
    checked = models.JSONField(help_text="what was checked -> how many rows")
    judged_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="rows settled before this were judged (the next periodic run starts from here)",
    )

    class Meta:
        ordering = ("-finished_at", "-id")

    def __str__(self) -> str:
        return f"reconciliation at {self.finished_at}: {self.total} violation(s)"


_Row = TypeVar("_Row", bound=models.Model)


def as_stored(row: _Row) -> _Row:
    """`row` marked as read from the database: a written-out statement has just
    stored it exactly as built."""
    row._state.adding, row._state.db = False, connection.alias
    return row
