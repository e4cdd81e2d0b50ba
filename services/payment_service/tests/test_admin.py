from collections.abc import Callable

import pytest
from django.test import Client

from payments.models import LedgerEntry, Payment, Wallet

pytestmark = pytest.mark.django_db


def test_admin_lists_wallets_payments_and_ledger(
    admin_client: Client, make_payment: Callable[..., Payment]
) -> None:
    payment = make_payment(order_id="a-1")
    wallet = Wallet.objects.get(user_id=payment.user_id)

    for url in (
        "/admin/payments/wallet/",
        "/admin/payments/payment/",
        "/admin/payments/ledgerentry/",
        f"/admin/payments/wallet/{wallet.pk}/change/",
        f"/admin/payments/payment/{payment.pk}/change/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_admin_cannot_edit_money(admin_client: Client, make_payment: Callable[..., Payment]) -> None:
    payment = make_payment(order_id="a-1", amount="10.00", balance="100.00")
    wallet = Wallet.objects.get(user_id=payment.user_id)

    response = admin_client.post(
        f"/admin/payments/wallet/{wallet.pk}/change/",
        {"balance": "99999.00", "user_id": 5, "currency": "USD"},
    )

    assert response.status_code == 403
    assert admin_client.get("/admin/payments/wallet/add/").status_code == 403
    wallet.refresh_from_db()
    assert (wallet.user_id, wallet.balance, wallet.currency) == (payment.user_id, 90, "EUR")
    assert LedgerEntry.objects.count() == 2
