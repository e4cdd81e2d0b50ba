"""The database itself refuses what must never happen, whatever code runs."""

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from payments.models import LedgerEntry, LedgerEntryKind, Payment, Wallet

pytestmark = pytest.mark.django_db


def test_a_balance_cannot_go_negative(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(balance="10.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") - Decimal("10.01"))
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("10.00")


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        (LedgerEntryKind.CREDIT, Decimal("-1.00")),
        (LedgerEntryKind.CHARGE, Decimal("1.00")),
        (LedgerEntryKind.REFUND, Decimal("-1.00")),
        (LedgerEntryKind.CREDIT, Decimal("0.00")),
    ],
)
def test_a_ledger_entry_sign_must_match_its_kind(
    make_payment: Callable[..., Payment], kind: LedgerEntryKind, amount: Decimal
) -> None:
    payment = make_payment()
    entries = LedgerEntry.objects.count()
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            wallet=Wallet.objects.get(user_id=payment.user_id), kind=kind, amount=amount, payment=payment
        )
    assert LedgerEntry.objects.count() == entries


def test_a_payment_is_debited_at_most_once(make_payment: Callable[..., Payment]) -> None:
    payment = make_payment(amount="10.00")
    wallet = Wallet.objects.get(user_id=payment.user_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            wallet=wallet, kind=LedgerEntryKind.CHARGE, amount=Decimal("-10.00"), payment=payment
        )
    assert LedgerEntry.objects.filter(payment=payment).count() == 1


def test_an_order_has_one_payment(make_payment: Callable[..., Payment]) -> None:
    payment = make_payment(order_id="order-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(
            order_id="order-1",
            user_id=payment.user_id,
            amount=Decimal("1.00"),
            currency="EUR",
            status="FAILED",
        )
    assert Payment.objects.count() == 1
