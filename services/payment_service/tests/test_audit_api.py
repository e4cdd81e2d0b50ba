"""GET /internal/payments/audit/...: the reconciliation auditor's read-only pages
(service tokens with `payments:audit` only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from comptoir.testing import TokenFactory
from payments.errors import InsufficientFunds
from payments.models import Payment, Wallet
from payments.services import payment_charge, payment_refund

from .conftest import ALICE, BOB

pytestmark = pytest.mark.django_db

PAYMENT_AUDIT = "/internal/payments/audit/payments/"
WALLET_AUDIT = "/internal/payments/audit/wallets/"


@pytest.fixture
def audit(client: Client, service_headers: dict[str, str]) -> Callable[..., Any]:
    def get(path: str, params: dict[str, Any] | None = None) -> Any:
        return client.get(path, params or {}, headers=service_headers)

    return get


@pytest.mark.parametrize("path", [PAYMENT_AUDIT, WALLET_AUDIT])
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("end_user", 403, "permission_denied"),
        ("email_service", 403, "insufficient_scope"),
        ("saga_only", 403, "insufficient_scope"),
    ],
)
def test_audit_routes_need_the_payments_audit_scope(
    client: Client,
    tokens: TokenFactory,
    make_payment: Callable[..., Payment],
    caller: str,
    status: int,
    code: str,
    path: str,
) -> None:
    make_payment()
    token = {
        "anonymous": None,
        "end_user": tokens.user(ALICE),
        "email_service": tokens.service("email_service"),
        # The saga's money scopes without the audit one.
        "saga_only": tokens.service("order_service", scopes=["payments:charge", "payments:refund"]),
    }[caller]
    response = client.get(path, headers=tokens.header(token) if token else {})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if code == "insufficient_scope":
        assert response.json()["error"]["details"]["required_scope"] == "payments:audit"


def test_payments_carry_what_their_ledger_moved(
    audit: Callable[..., Any], make_wallet: Callable[..., Wallet], make_payment: Callable[..., Payment]
) -> None:
    captured = make_payment(order_id="o-1", amount="10.00")
    refunded = make_payment(order_id="o-2", amount="5.50")
    payment_refund(order_id="o-2")
    make_wallet(user_id=BOB, balance="1.00")
    with pytest.raises(InsufficientFunds):
        payment_charge(order_id="o-3", user_id=BOB, amount=Decimal("9.00"), currency="EUR")
    failed = Payment.objects.get(order_id="o-3")

    body = audit(PAYMENT_AUDIT).json()

    assert [
        (p["id"], p["order_id"], p["user_id"], p["status"], p["amount"], p["charged"], p["refunded"])
        for p in body["results"]
    ] == [
        (captured.pk, "o-1", ALICE, "CAPTURED", "10.00", "10.00", "0.00"),
        (refunded.pk, "o-2", ALICE, "REFUNDED", "5.50", "5.50", "5.50"),
        (failed.pk, "o-3", BOB, "FAILED", "9.00", "0.00", "0.00"),
    ]
    assert body["next_after"] is None


def test_payments_by_order_id_by_window_and_in_keyset_pages(
    audit: Callable[..., Any], make_payment: Callable[..., Payment]
) -> None:
    payments = [make_payment(order_id=f"o-{n}", amount="1.00") for n in (1, 2, 3)]
    old = timezone.now() - timedelta(hours=3)
    Payment.objects.filter(order_id="o-1").update(created_at=old)
    middle = (old + timedelta(hours=1)).isoformat()

    by_order = audit(PAYMENT_AUDIT, {"order_id": ["o-3", "o-1", "nope"]}).json()
    since = audit(PAYMENT_AUDIT, {"since": middle}).json()
    until = audit(PAYMENT_AUDIT, {"until": middle}).json()
    first = audit(PAYMENT_AUDIT, {"limit": 2}).json()
    second = audit(PAYMENT_AUDIT, {"limit": 2, "after": first["next_after"]}).json()

    assert [p["order_id"] for p in by_order["results"]] == ["o-1", "o-3"]
    assert [p["order_id"] for p in since["results"]] == ["o-2", "o-3"]
    assert [p["order_id"] for p in until["results"]] == ["o-1"]
    assert (first["next_after"], [p["id"] for p in first["results"]]) == (
        payments[1].pk,
        [payments[0].pk, payments[1].pk],
    )
    assert ([p["id"] for p in second["results"]], second["next_after"]) == ([payments[2].pk], None)


def test_wallets_carry_the_sum_of_their_ledger(
    audit: Callable[..., Any], make_wallet: Callable[..., Wallet], make_payment: Callable[..., Payment]
) -> None:
    make_payment(order_id="o-1", amount="30.00", balance="100.00")
    make_wallet(user_id=BOB, balance="0.00")
    # A balance moved behind the ledger's back: what the auditor must see.
    Wallet.objects.filter(user_id=BOB).update(balance=Decimal("12.00"))

    body = audit(WALLET_AUDIT).json()

    assert [(w["user_id"], w["balance"], w["ledger"], w["currency"]) for w in body["results"]] == [
        (ALICE, "70.00", "70.00", "EUR"),
        (BOB, "12.00", "0.00", "EUR"),
    ]
    assert body["next_after"] is None


@pytest.mark.parametrize("query", [{"limit": 501}, {"limit": 0}, {"after": "x"}, {"until": "soon"}])
def test_unbounded_or_malformed_queries_are_400(audit: Callable[..., Any], query: dict[str, Any]) -> None:
    response = audit(PAYMENT_AUDIT, query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
