"""/api/payments/...: end users see only their own payments and wallet; staff top up."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from payments.errors import InsufficientFunds
from payments.models import LedgerEntry, Payment, Wallet
from payments.services import payment_charge, payment_refund

from .conftest import ALICE, BOB, STAFF, assert_ledger_explains_balance, balance_of

pytestmark = pytest.mark.django_db

LIST_URL = "/api/payments/"
WALLET_URL = "/api/payments/wallet/"
Headers = Callable[..., dict[str, str]]


def detail_url(payment_id: int) -> str:
    return f"/api/payments/{payment_id}/"


def credit_url(user_id: int) -> str:
    return f"/api/payments/wallets/{user_id}/credit/"


def test_my_payments_lists_only_mine_newest_first(
    client: Client, make_payment: Callable[..., Payment], user_headers: Headers
) -> None:
    older = make_payment(order_id="a-1", user_id=ALICE, amount="10.00")
    make_payment(order_id="b-1", user_id=BOB, amount="5.00")
    newer = make_payment(order_id="a-2", user_id=ALICE, amount="2.50")
    payment_refund(order_id="a-1")

    response = client.get(LIST_URL, headers=user_headers(ALICE))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [(p["id"], p["order_id"], p["amount"], p["status"]) for p in body["results"]] == [
        (newer.pk, "a-2", "2.50", "CAPTURED"),
        (older.pk, "a-1", "10.00", "REFUNDED"),
    ]
    assert set(body["results"][0]) == {
        "id",
        "order_id",
        "amount",
        "currency",
        "status",
        "failure_code",
        "created_at",
        "updated_at",
        "captured_at",
        "refunded_at",
    }


def test_my_payments_are_paginated(
    client: Client, make_wallet: Callable[..., Wallet], user_headers: Headers
) -> None:
    make_wallet(balance="100.00")
    for index in range(3):
        payment_charge(order_id=f"o-{index}", user_id=ALICE, amount=Decimal("1.00"), currency="EUR")

    first = client.get(LIST_URL, {"page_size": 2}, headers=user_headers(ALICE)).json()
    second = client.get(LIST_URL, {"page_size": 2, "page": 2}, headers=user_headers(ALICE)).json()

    assert (first["count"], len(first["results"]), len(second["results"])) == (3, 2, 1)
    assert [p["order_id"] for p in first["results"] + second["results"]] == ["o-2", "o-1", "o-0"]
    assert second["next"] is None


def test_my_payments_include_declined_attempts(
    client: Client, make_wallet: Callable[..., Wallet], user_headers: Headers
) -> None:
    make_wallet(balance="1.00")
    with pytest.raises(InsufficientFunds):
        payment_charge(order_id="o-1", user_id=ALICE, amount=Decimal("5.00"), currency="EUR")

    results = client.get(LIST_URL, headers=user_headers(ALICE)).json()["results"]

    assert [(p["status"], p["failure_code"]) for p in results] == [("FAILED", "insufficient_funds")]


def test_payment_detail_shows_my_payment(
    client: Client, make_payment: Callable[..., Payment], user_headers: Headers
) -> None:
    payment = make_payment(order_id="a-1", amount="12.00")

    response = client.get(detail_url(payment.pk), headers=user_headers(ALICE))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["order_id"], body["amount"], body["currency"], body["status"]) == (
        payment.pk,
        "a-1",
        "12.00",
        "EUR",
        "CAPTURED",
    )


@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("other user", 404, "payment_not_found"),
        ("staff", 404, "payment_not_found"),
        ("service", 403, "permission_denied"),
    ],
)
def test_payment_detail_authorization(
    client: Client,
    make_payment: Callable[..., Payment],
    user_headers: Headers,
    service_headers: dict[str, str],
    caller: str,
    status: int,
    code: str,
) -> None:
    payment = make_payment(order_id="a-1", user_id=ALICE)
    headers = {
        "anonymous": {},
        "other user": user_headers(BOB),
        "staff": user_headers(STAFF, is_staff=True),
        "service": service_headers,
    }[caller]

    response = client.get(detail_url(payment.pk), headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_payment_detail_of_a_missing_payment_is_404(client: Client, user_headers: Headers) -> None:
    response = client.get(detail_url(123456), headers=user_headers(ALICE))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "payment_not_found"


@pytest.mark.parametrize(("caller", "status"), [("anonymous", 401), ("service", 403)])
@pytest.mark.parametrize("url", [LIST_URL, WALLET_URL])
def test_my_routes_need_an_end_user(
    client: Client, service_headers: dict[str, str], caller: str, status: int, url: str
) -> None:
    headers = {"anonymous": {}, "service": service_headers}[caller]
    response = client.get(url, headers=headers)
    assert response.status_code == status
    assert not Wallet.objects.exists()


def test_payments_are_read_only_for_their_owner(
    client: Client, make_payment: Callable[..., Payment], user_headers: Headers
) -> None:
    payment = make_payment(order_id="a-1", amount="10.00")

    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(
            detail_url(payment.pk),
            {"status": "REFUNDED", "amount": "0.01", "user_id": BOB},
            content_type="application/json",
            headers=user_headers(ALICE),
        )
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
    created = client.post(
        LIST_URL,
        {"order_id": "x", "amount": "1.00"},
        content_type="application/json",
        headers=user_headers(ALICE),
    )
    assert created.status_code == 405

    payment.refresh_from_db()
    assert (payment.status, payment.amount, payment.user_id) == ("CAPTURED", Decimal("10.00"), ALICE)
    assert Payment.objects.count() == 1


def test_my_wallet_shows_balance_and_recent_entries(
    client: Client, make_payment: Callable[..., Payment], user_headers: Headers
) -> None:
    payment = make_payment(order_id="a-1", amount="15.00", balance="500.00")
    make_payment(order_id="b-1", user_id=BOB, amount="1.00")

    response = client.get(WALLET_URL, headers=user_headers(ALICE))

    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["balance"], body["currency"]) == (ALICE, "485.00", "EUR")
    assert [(e["kind"], e["amount"], e["payment_id"], e["order_id"]) for e in body["recent_entries"]] == [
        ("CHARGE", "-15.00", payment.pk, "a-1"),
        ("CREDIT", "500.00", None, None),
    ]


def test_my_wallet_shows_only_the_latest_entries(
    client: Client, make_wallet: Callable[..., Wallet], user_headers: Headers, settings: Any
) -> None:
    settings.PAYMENT_WALLET_RECENT_ENTRIES = 2
    make_wallet(balance="100.00")
    for index in range(3):
        payment_charge(order_id=f"o-{index}", user_id=ALICE, amount=Decimal("1.00"), currency="EUR")

    body = client.get(WALLET_URL, headers=user_headers(ALICE)).json()

    assert body["balance"] == "97.00"
    assert [e["order_id"] for e in body["recent_entries"]] == ["o-2", "o-1"]


def test_a_user_without_wallet_gets_an_empty_one(client: Client, user_headers: Headers) -> None:
    response = client.get(WALLET_URL, headers=user_headers(42))

    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["balance"], body["currency"], body["recent_entries"]) == (
        42,
        "0.00",
        "EUR",
        [],
    )
    assert Wallet.objects.get(user_id=42).balance == Decimal("0.00")


def test_my_wallet_cannot_be_written(
    client: Client, make_wallet: Callable[..., Wallet], user_headers: Headers
) -> None:
    make_wallet(balance="20.00")
    for method in ("post", "put", "patch"):
        response = getattr(client, method)(
            WALLET_URL,
            {"balance": "99999.00", "user_id": BOB},
            content_type="application/json",
            headers=user_headers(ALICE),
        )
        assert response.status_code == 405
    assert balance_of(ALICE) == Decimal("20.00")
    assert not Wallet.objects.filter(user_id=BOB).exists()


def test_staff_credit_tops_a_wallet_up(
    client: Client, make_wallet: Callable[..., Wallet], user_headers: Headers
) -> None:
    wallet = make_wallet(user_id=BOB, balance="20.00")

    response = client.post(
        credit_url(BOB),
        {"amount": "30.50", "balance": "99999.00", "user_id": ALICE, "currency": "USD"},
        content_type="application/json",
        headers=user_headers(STAFF, is_staff=True),
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["user_id"], body["balance"], body["currency"]) == (BOB, "50.50", "EUR")
    assert [(e["kind"], e["amount"]) for e in body["recent_entries"]] == [
        ("CREDIT", "30.50"),
        ("CREDIT", "20.00"),
    ]
    assert not Wallet.objects.filter(user_id=ALICE).exists()
    assert_ledger_explains_balance(wallet)


def test_staff_credit_opens_a_missing_wallet(client: Client, user_headers: Headers) -> None:
    response = client.post(
        credit_url(42),
        {"amount": "5.00"},
        content_type="application/json",
        headers=user_headers(STAFF, is_staff=True),
    )
    assert response.status_code == 200
    assert response.json()["balance"] == "5.00"
    assert Wallet.objects.get(user_id=42).balance == Decimal("5.00")


@pytest.mark.parametrize("amount", ["0", "-1.00", "abc", "1.001", None])
def test_staff_credit_validates_the_amount(
    client: Client, make_wallet: Callable[..., Wallet], user_headers: Headers, amount: Any
) -> None:
    make_wallet(user_id=BOB, balance="20.00")

    response = client.post(
        credit_url(BOB),
        {"amount": amount},
        content_type="application/json",
        headers=user_headers(STAFF, is_staff=True),
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["details"])) == ("validation_error", ["amount"])
    assert balance_of(BOB) == Decimal("20.00")
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("owner", 403, "permission_denied"),
        ("other user", 403, "permission_denied"),
        ("service", 403, "permission_denied"),
    ],
)
def test_staff_credit_authorization(
    client: Client,
    make_wallet: Callable[..., Wallet],
    user_headers: Headers,
    service_headers: dict[str, str],
    caller: str,
    status: int,
    code: str,
) -> None:
    make_wallet(user_id=BOB, balance="20.00")
    headers = {
        "anonymous": {},
        "owner": user_headers(BOB),
        "other user": user_headers(ALICE),
        "service": service_headers,
    }[caller]

    response = client.post(
        credit_url(BOB), {"amount": "100.00"}, content_type="application/json", headers=headers
    )

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert balance_of(BOB) == Decimal("20.00")
    assert LedgerEntry.objects.count() == 1


# 2**63 is past PostgreSQL's bigint: refused before it reaches the database (it was a 500).
@pytest.mark.parametrize("user_id", [0, 2**63, 4178694250420803364566874456064])
def test_staff_credit_of_a_user_id_out_of_range_is_refused(
    client: Client, user_headers: Headers, user_id: int
) -> None:
    response = client.post(
        credit_url(user_id),
        {"amount": "5.00"},
        content_type="application/json",
        headers=user_headers(STAFF, is_staff=True),
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not Wallet.objects.exists()
