from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from payments.models import LedgerEntry, LedgerEntryKind, Wallet
from payments.services import payment_charge

pytestmark = pytest.mark.django_db

SEEDED = [(1, Decimal("1000.00"), "EUR"), (2, Decimal("500.00"), "EUR"), (3, Decimal("20.00"), "EUR")]


def wallets() -> list[tuple[int, Decimal, str]]:
    return list(Wallet.objects.order_by("user_id").values_list("user_id", "balance", "currency"))


def test_seed_opens_the_demo_wallets_with_a_credit_entry_each() -> None:
    call_command("seed_demo", stdout=StringIO())

    assert wallets() == SEEDED
    assert sorted(LedgerEntry.objects.values_list("wallet__user_id", "kind", "amount")) == [
        (1, LedgerEntryKind.CREDIT, Decimal("1000.00")),
        (2, LedgerEntryKind.CREDIT, Decimal("500.00")),
        (3, LedgerEntryKind.CREDIT, Decimal("20.00")),
    ]


def test_seed_twice_does_not_double_balances_nor_refill_spent_wallets() -> None:
    call_command("seed_demo", stdout=StringIO())
    payment_charge(order_id="o-1", user_id=3, amount=Decimal("15.00"), currency="EUR")

    out = StringIO()
    call_command("seed_demo", stdout=out)

    assert wallets() == [SEEDED[0], SEEDED[1], (3, Decimal("5.00"), "EUR")]
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CREDIT).count() == 3
    assert "wallet of user 3: exists, balance 5.00 EUR" in out.getvalue()
