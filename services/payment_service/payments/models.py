"""Wallets, their ledger, and the payments charged against them.

A wallet's balance is a cached sum of its ledger: every change of `balance`
happens in the same transaction as the `LedgerEntry` that explains it, so
`balance == sum(entries.amount)` always holds. The database backs the rules
that must never break: a balance is never negative, an entry's sign matches
its kind, and a payment is debited at most once and refunded at most once.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

# Money: up to 9,999,999,999.99, two places, as Decimal (never float).
MONEY_DIGITS = 12
MONEY_PLACES = 2


class Wallet(models.Model):
    """One per user; `balance` only ever moves together with a ledger entry."""

    user_id = models.PositiveBigIntegerField(unique=True)
    balance = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=Decimal("0.00")
    )
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_non_negative"),
        ]

    def __str__(self) -> str:
        return f"wallet of user {self.user_id}: {self.balance} {self.currency}"


class PaymentStatus(models.TextChoices):
    CAPTURED = "CAPTURED", "Captured"
    REFUNDED = "REFUNDED", "Refunded"
    FAILED = "FAILED", "Failed"


class Payment(models.Model):
    """The charge for one order; `order_id` is the idempotency key of charge and refund.

    A declined attempt is kept as a FAILED row (with the reason in
    `failure_code`) so support can see it; a later attempt for the same order
    with enough funds turns that row into CAPTURED.
    """

    order_id = models.CharField(max_length=64, unique=True)
    user_id = models.PositiveBigIntegerField(db_index=True)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices)
    failure_code = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=PaymentStatus.values), name="payment_status_known"),
            models.CheckConstraint(
                condition=Q(status=PaymentStatus.FAILED) | Q(captured_at__isnull=False),
                name="payment_captured_has_capture_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.REFUNDED) | Q(refunded_at__isnull=False),
                name="payment_refunded_has_refund_time",
            ),
        ]

    def __str__(self) -> str:
        return f"payment {self.pk} for order {self.order_id}: {self.status}"


class LedgerEntryKind(models.TextChoices):
    CREDIT = "CREDIT", "Credit"
    CHARGE = "CHARGE", "Charge"
    REFUND = "REFUND", "Refund"


class LedgerEntry(models.Model):
    """An immutable movement of money in a wallet: positive in, negative out."""

    # No index of its own: the (wallet, -created_at) index serves lookups by wallet.
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries", db_index=False)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    kind = models.CharField(max_length=16, choices=LedgerEntryKind.choices)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="entries", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind=LedgerEntryKind.CREDIT, amount__gt=0)
                    | Q(kind=LedgerEntryKind.CHARGE, amount__lt=0, payment__isnull=False)
                    | Q(kind=LedgerEntryKind.REFUND, amount__gt=0, payment__isnull=False)
                ),
                name="ledger_entry_sign_matches_kind",
            ),
            # A payment is debited once and paid back once, whatever retries happen.
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(kind=LedgerEntryKind.CHARGE),
                name="ledger_one_charge_per_payment",
            ),
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(kind=LedgerEntryKind.REFUND),
                name="ledger_one_refund_per_payment",
            ),
        ]
        indexes = [models.Index(fields=["wallet", "-created_at"], name="ledger_wallet_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on wallet {self.wallet_id}"


class ChargeTombstone(models.Model):
    """An order whose refund came before any charge landed (or after its charge
    was declined): no charge for it may capture money any more.

    Written by a refund that finds nothing captured, so a charge still in
    flight (a slow or retried request the saga already gave up on) is refused
    with `order_compensated` when it arrives instead of taking money nobody
    will give back. Kept for good: it is one small row per such order.
    """

    order_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"no charge may capture for order {self.order_id}"
