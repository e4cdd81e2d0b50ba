"""Reads: every query is scoped to the caller it serves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from .errors import PaymentNotFound
from .models import LedgerEntry, Payment, Wallet


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
