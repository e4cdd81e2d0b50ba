"""POST /internal/payments/charge/ and /refund/: service tokens only."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from comptoir.testing import TokenFactory
from payments.models import LedgerEntry, LedgerEntryKind, Payment, PaymentStatus, Wallet

from .conftest import ALICE, CHARGE_URL, REFUND_URL, assert_ledger_explains_balance, balance_of

pytestmark = pytest.mark.django_db

Post = Callable[..., Any]
CHARGE_BATCH_URL = CHARGE_URL + "batch/"


def test_charge_answers_201_with_the_captured_payment(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    make_wallet(balance="500.00")

    response = post_json(CHARGE_URL, charge_body(amount="39.80"), service_headers)

    assert response.status_code == 201, response.json()
    payment = Payment.objects.get()
    assert response.json() == {
        "payment_id": payment.pk,
        "order_id": "order-1",
        "user_id": ALICE,
        "status": "CAPTURED",
        "amount": "39.80",
        "currency": "EUR",
    }
    assert balance_of(ALICE) == Decimal("460.20")


def test_repeated_charge_answers_the_same_body_and_debits_once(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    make_wallet(balance="100.00")

    first = post_json(CHARGE_URL, charge_body(), service_headers)
    second = post_json(CHARGE_URL, charge_body(), service_headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert Payment.objects.count() == 1
    assert balance_of(ALICE) == Decimal("90.00")


def test_order_id_may_be_a_number_or_a_uuid(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    make_wallet(balance="100.00")
    numeric = post_json(CHARGE_URL, charge_body(order_id=17), service_headers)
    uuid = post_json(
        CHARGE_URL, charge_body(order_id="0b7f3c1e-8f4a-4d7e-9a51-3c2f6d1e9a10"), service_headers
    )
    assert (numeric.status_code, uuid.status_code) == (201, 201)
    assert numeric.json()["order_id"] == "17"
    assert sorted(Payment.objects.values_list("order_id", flat=True)) == [
        "0b7f3c1e-8f4a-4d7e-9a51-3c2f6d1e9a10",
        "17",
    ]


def test_repeated_charge_with_another_amount_is_409_idempotency_conflict(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    make_wallet(balance="100.00")
    post_json(CHARGE_URL, charge_body(amount="10.00"), service_headers)

    response = post_json(CHARGE_URL, charge_body(amount="12.00"), service_headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert list(Payment.objects.values_list("amount", flat=True)) == [Decimal("10.00")]
    assert balance_of(ALICE) == Decimal("90.00")


def test_insufficient_funds_is_409_and_takes_nothing(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    wallet = make_wallet(balance="20.00")

    response = post_json(CHARGE_URL, charge_body(amount="39.80"), service_headers)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "insufficient_funds"
    assert error["details"] == {
        "order_id": "order-1",
        "amount": "39.80",
        "currency": "EUR",
        "balance": "20.00",
    }
    assert balance_of(ALICE) == Decimal("20.00")
    assert not LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).exists()
    assert not Payment.objects.filter(status=PaymentStatus.CAPTURED).exists()
    assert_ledger_explains_balance(wallet)


def test_charge_for_a_user_without_wallet_is_409_insufficient_funds(
    post_json: Post, service_headers: dict[str, str], charge_body: Callable[..., dict[str, Any]]
) -> None:
    response = post_json(CHARGE_URL, charge_body(user_id=77), service_headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert not Wallet.objects.exists()


def test_charge_ignores_fields_a_caller_may_not_set(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    make_wallet(balance="100.00")
    body = charge_body(
        status="REFUNDED", payment_id=999, balance="100000.00", failure_code="x", captured_at=None
    )

    response = post_json(CHARGE_URL, body, service_headers)

    assert response.status_code == 201
    payment = Payment.objects.get()
    assert (payment.status, payment.failure_code) == (PaymentStatus.CAPTURED, "")
    assert response.json()["payment_id"] == payment.pk
    assert balance_of(ALICE) == Decimal("90.00")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": "-10.00"}, "amount"),
        ({"amount": "ten"}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": "12345678901.00"}, "amount"),
        ({"amount": None}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"currency": "eur"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"order_id": ""}, "order_id"),
        ({"order_id": "x" * 65}, "order_id"),
        ({"user_id": 0}, "user_id"),
        ({"user_id": "alice"}, "user_id"),
    ],
)
def test_charge_validation_errors_are_400_and_charge_nothing(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
    overrides: dict[str, Any],
    field: str,
) -> None:
    make_wallet(balance="100.00")

    response = post_json(CHARGE_URL, charge_body(**overrides), service_headers)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == [field]
    assert not Payment.objects.exists()
    assert balance_of(ALICE) == Decimal("100.00")


def test_charge_with_missing_fields_lists_each_of_them(
    post_json: Post, service_headers: dict[str, str]
) -> None:
    response = post_json(CHARGE_URL, {}, service_headers)
    assert response.status_code == 400
    assert sorted(response.json()["error"]["details"]) == ["amount", "currency", "order_id", "user_id"]


def test_charge_with_a_body_that_is_not_json_is_400_parse_error(
    client: Any, service_headers: dict[str, str]
) -> None:
    response = client.post(CHARGE_URL, "{not json", content_type="application/json", headers=service_headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert not Payment.objects.exists()


def test_refund_answers_200_and_credits_once(
    make_payment: Callable[..., Payment], post_json: Post, service_headers: dict[str, str]
) -> None:
    payment = make_payment(amount="40.00", balance="100.00")

    first = post_json(REFUND_URL, {"order_id": "order-1"}, service_headers)
    second = post_json(REFUND_URL, {"order_id": "order-1"}, service_headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert (
        first.json()
        == second.json()
        == {
            "payment_id": payment.pk,
            "order_id": "order-1",
            "user_id": ALICE,
            "status": "REFUNDED",
            "amount": "40.00",
            "currency": "EUR",
        }
    )
    assert balance_of(ALICE) == Decimal("100.00")
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.REFUND).count() == 1


def test_refund_of_an_unknown_order_is_404_payment_not_found(
    make_payment: Callable[..., Payment], post_json: Post, service_headers: dict[str, str]
) -> None:
    make_payment(amount="40.00", balance="100.00")

    response = post_json(REFUND_URL, {"order_id": "order-2"}, service_headers)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "payment_not_found"
    assert balance_of(ALICE) == Decimal("60.00")
    assert Payment.objects.get().status == PaymentStatus.CAPTURED


def test_a_charge_after_the_refund_of_an_unknown_order_is_409_order_compensated(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    make_wallet(balance="100.00")
    refund = post_json(REFUND_URL, {"order_id": "order-1"}, service_headers)
    assert refund.status_code == 404
    assert refund.json()["error"]["code"] == "payment_not_found"

    response = post_json(CHARGE_URL, charge_body(order_id="order-1"), service_headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_compensated"
    assert response.json()["error"]["details"] == {"order_id": "order-1"}
    assert balance_of(ALICE) == Decimal("100.00")
    assert not Payment.objects.exists()
    assert not LedgerEntry.objects.exclude(kind=LedgerEntryKind.CREDIT).exists()


def test_refund_without_order_id_is_400(post_json: Post, service_headers: dict[str, str]) -> None:
    response = post_json(REFUND_URL, {"status": "REFUNDED"}, service_headers)
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["order_id"]


def test_a_batch_answers_each_charge_as_its_own_request_would(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    wallet = make_wallet(balance="50.00")
    first = post_json(CHARGE_URL, charge_body(order_id="order-1", amount="10.00"), service_headers)
    items = [
        charge_body(order_id="order-2", amount="15.00"),
        charge_body(order_id="order-3", amount="99.00"),  # more than is left
        charge_body(order_id="order-4", amount="-1"),  # not a charge
        charge_body(order_id="order-1", amount="10.00"),  # a repeat
        charge_body(order_id="order-1", amount="11.00"),  # the same order, another amount
        charge_body(order_id="order-5", amount="25.00"),
    ]

    response = post_json(CHARGE_BATCH_URL, {"items": items}, service_headers)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["status"] for result in results] == [201, 409, 400, 201, 409, 201]
    captured = {p.order_id: p.pk for p in Payment.objects.filter(status=PaymentStatus.CAPTURED)}
    assert results[0]["body"] == {
        "payment_id": captured["order-2"],
        "order_id": "order-2",
        "user_id": ALICE,
        "status": "CAPTURED",
        "amount": "15.00",
        "currency": "EUR",
    }
    assert results[1]["body"]["error"]["code"] == "insufficient_funds"
    assert results[1]["body"]["error"]["details"]["balance"] == "25.00"
    assert results[2]["body"]["error"]["code"] == "validation_error"
    assert "amount" in results[2]["body"]["error"]["details"]
    assert results[3]["body"] == first.json()
    assert results[4]["body"]["error"]["code"] == "idempotency_conflict"
    assert results[5]["body"]["order_id"] == "order-5"
    # Only what each item alone would have taken: 10 + 15 + 25.
    assert sorted(captured) == ["order-1", "order-2", "order-5"]
    assert balance_of(ALICE) == Decimal("0.00")
    assert_ledger_explains_balance(wallet)


@pytest.mark.parametrize(
    "body",
    [{}, {"items": []}, {"items": [1]}, {"items": [{"order_id": "x"}] * 51}],
    ids=["no items", "empty", "not objects", "too many"],
)
def test_a_body_that_is_not_a_batch_is_400_and_charges_nothing(
    make_wallet: Callable[..., Wallet], post_json: Post, service_headers: dict[str, str], body: dict[str, Any]
) -> None:
    make_wallet(balance="50.00")
    response = post_json(CHARGE_BATCH_URL, body, service_headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "items" in response.json()["error"]["details"]
    assert not Payment.objects.exists()


@pytest.mark.parametrize("url", [CHARGE_URL, CHARGE_BATCH_URL, REFUND_URL])
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("user", 403, "permission_denied"),
        ("staff", 403, "permission_denied"),
        ("expired service", 401, "authentication_failed"),
        ("wrong issuer", 401, "authentication_failed"),
        # Service tokens open only the routes of their scopes (comptoir._scopes).
        ("email_service", 403, "insufficient_scope"),
        ("product_service", 403, "insufficient_scope"),
        ("order_service without the scope", 403, "insufficient_scope"),
    ],
)
def test_internal_routes_refuse_anyone_but_a_service_with_the_scope(
    make_payment: Callable[..., Payment],
    post_json: Post,
    tokens: TokenFactory,
    charge_body: Callable[..., dict[str, Any]],
    url: str,
    caller: str,
    status: int,
    code: str,
) -> None:
    make_payment(order_id="order-1", amount="10.00", balance="100.00")
    headers = {
        "anonymous": {},
        "user": tokens.header(tokens.user(ALICE)),
        "staff": tokens.header(tokens.user(1, is_staff=True)),
        "expired service": tokens.header(tokens.service("order_service", lifetime_s=-10)),
        "wrong issuer": tokens.header(tokens.service("order_service", iss="someone-else")),
        "email_service": tokens.header(tokens.service("email_service")),
        "product_service": tokens.header(tokens.service("product_service")),
        "order_service without the scope": tokens.header(
            tokens.service("order_service", scopes=["users:read", "stock:reserve"])
        ),
    }[caller]

    # A charge of a new order, or a refund of the captured one: either would move money.
    body = {
        CHARGE_URL: charge_body(order_id="order-2"),
        CHARGE_BATCH_URL: {"items": [charge_body(order_id="order-2")]},
        REFUND_URL: {"order_id": "order-1"},
    }[url]
    response = post_json(url, body, headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert Payment.objects.count() == 1
    assert Payment.objects.get().status == PaymentStatus.CAPTURED
    assert balance_of(ALICE) == Decimal("90.00")


@pytest.mark.parametrize(("url", "scope"), [(CHARGE_URL, "payments:charge"), (REFUND_URL, "payments:refund")])
def test_a_token_without_the_scope_is_told_which_scope_is_missing(
    make_payment: Callable[..., Payment],
    post_json: Post,
    tokens: TokenFactory,
    charge_body: Callable[..., dict[str, Any]],
    url: str,
    scope: str,
) -> None:
    make_payment(order_id="order-1", amount="10.00", balance="100.00")
    headers = tokens.header(tokens.service("email_service"))
    body = charge_body(order_id="order-2") if url == CHARGE_URL else {"order_id": "order-1"}

    response = post_json(url, body, headers)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["message"] == (
        f"This route requires the scope {scope!r}, which the token of email_service does not carry."
    )
    assert error["details"] == {
        "required_scope": scope,
        "client": "email_service",
        "granted_scopes": ["users:read"],
    }
    assert Payment.objects.get().status == PaymentStatus.CAPTURED
    assert balance_of(ALICE) == Decimal("90.00")


def test_the_refund_scope_alone_cannot_charge(
    make_wallet: Callable[..., Wallet],
    post_json: Post,
    tokens: TokenFactory,
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    make_wallet(balance="100.00")
    headers = tokens.header(tokens.service("order_service", scopes=["payments:refund"]))

    response = post_json(CHARGE_URL, charge_body(), headers)

    assert response.status_code == 403
    assert response.json()["error"]["details"]["required_scope"] == "payments:charge"
    assert Payment.objects.count() == 0
    assert balance_of(ALICE) == Decimal("100.00")
