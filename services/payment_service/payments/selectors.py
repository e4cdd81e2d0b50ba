"""Reads: every query is scoped to the caller it serves (the reconciliation
auditor's pages, for order_service's `payments:audit` token, read everything)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from .errors import PaymentNotFound
from .models import LedgerEntry, LedgerEntryKind, Payment, Wallet


@dataclass(frozen=True)
class WalletStatement:
    """A wallet's balance with its latest ledger entries, newest first."""

    user_id: int
    balance: Decimal
    currency: str
    updated_at: datetime
    recent_entries: list[LedgerEntry]


def payment_list(*, user_id: int) -> QuerySet[Payment]:
    return Payment.objects.filter(user_id=user_id).order_by("-created_at", "-id")


def payment_get(*, user_id: int, payment_id: int) -> Payment:
    """The caller's payment; another user's is as absent as a missing one."""
    payment = Payment.objects.filter(user_id=user_id, pk=payment_id).first()
    if payment is None:
        raise PaymentNotFound()
    return payment


def wallet_statement(*, wallet: Wallet, limit: int) -> WalletStatement:
    entries = (
        LedgerEntry.objects.filter(wallet=wallet).select_related("payment").order_by("-created_at", "-id")
    )
    return WalletStatement(
        user_id=wallet.user_id,
        balance=wallet.balance,
        currency=wallet.currency,
        updated_at=wallet.updated_at,
        recent_entries=list(entries[:limit]),
    )


# --- the reconciliation auditor's pages -------------------------------------

_ZERO = Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))


def payment_audit_page(
    *,
    after: int,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
    order_ids: Sequence[str] = (),
) -> list[Payment]:
    """Payments by id above `after` (keyset pages), created in [since, until), or
    only those of `order_ids`; each annotated with what its ledger entries moved:
    `charged` (positive) and `refunded`."""
    payments = Payment.objects.filter(pk__gt=after)
    if since is not None:
        payments = payments.filter(created_at__gte=since)
    if until is not None:
        payments = payments.filter(created_at__lt=until)
    if order_ids:
        payments = payments.filter(order_id__in=list(order_ids))
    payments = payments.annotate(
        charged=-Coalesce(Sum("entries__amount", filter=Q(entries__kind=LedgerEntryKind.CHARGE)), _ZERO),
        refunded=Coalesce(Sum("entries__amount", filter=Q(entries__kind=LedgerEntryKind.REFUND)), _ZERO),
    )
    return list(payments.order_by("pk")[:limit])


def wallet_audit_page(*, after: int, limit: int) -> list[Wallet]:
    """Wallets by id above `after` (keyset pages), each annotated with `ledger`,
    the sum of its entries (which must equal its balance)."""
    wallets = Wallet.objects.filter(pk__gt=after).annotate(ledger=Coalesce(Sum("entries__amount"), _ZERO))
    return list(wallets.order_by("pk")[:limit])
