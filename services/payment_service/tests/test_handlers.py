"""The saga's event handlers: stock.reserved → charge, order.cancelled → refund;
each effect with the event it publishes, repeats, declines and no-ops."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import payments.handlers  # noqa: F401 - registers the handlers
from comptoir.events import OutboxMessage
from comptoir.events.testing import deliver, make_envelope, published
from payments.models import LedgerEntry, LedgerEntryKind, Payment, PaymentStatus, Wallet
from payments.services import payment_refund, wallet_credit

from .conftest import ALICE, BOB, assert_ledger_explains_balance, balance_of

pytestmark = pytest.mark.django_db


def stock_reserved(
    order_id: str = "order-1", user_id: int | str = ALICE, amount: str = "39.80"
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "reservation_id": "17",
        "lines": [{"product_id": "4", "quantity": 2}],
        "user_id": str(user_id),
        "amount": amount,
        "currency": "EUR",
    }


def cancelled(order_id: str = "order-1", reason: str = "insufficient_stock") -> dict[str, Any]:
    return {"order_id": order_id, "user_id": str(ALICE), "reason": reason}


# --- stock.reserved -------------------------------------------------------------------


def test_stock_reserved_charges_the_wallet_and_publishes_payment_succeeded(
    make_wallet: Callable[..., Wallet],
) -> None:
    wallet = make_wallet(ALICE, "100.00")

    deliver(make_envelope("stock.reserved", stock_reserved(), producer="product_service"))

    payment = Payment.objects.get(order_id="order-1")
    assert (payment.status, payment.user_id, payment.amount) == (
        PaymentStatus.CAPTURED,
        ALICE,
        Decimal("39.80"),
    )
    assert balance_of(ALICE) == Decimal("60.20")
    assert_ledger_explains_balance(wallet)
    assert published() == [
        {
            "order_id": "order-1",
            "user_id": str(ALICE),
            "payment_id": str(payment.pk),
            "amount": "39.80",
            "currency": "EUR",
        }
    ]
    row = OutboxMessage.objects.get()
    assert (row.event_type, row.key) == ("payment.succeeded", "order-1")


def test_stock_reserved_twice_charges_once_and_publishes_once(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(ALICE, "100.00")
    event = make_envelope("stock.reserved", stock_reserved())

    deliver(event)
    deliver(event)
    deliver(make_envelope("stock.reserved", event.payload))  # the same order under another event id

    assert balance_of(ALICE) == Decimal("60.20")
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).count() == 1
    assert [row.event_type for row in OutboxMessage.objects.all()] == ["payment.succeeded"]


def test_stock_reserved_without_enough_funds_takes_nothing_and_publishes_payment_failed(
    make_wallet: Callable[..., Wallet],
) -> None:
    make_wallet(BOB, "20.00")

    event = make_envelope("stock.reserved", stock_reserved(user_id=BOB))
    deliver(event)
    deliver(event)

    assert balance_of(BOB) == Decimal("20.00")
    assert not LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).exists()
    payment = Payment.objects.get(order_id="order-1")
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "insufficient_funds")
    assert published() == [
        {
            "order_id": "order-1",
            "user_id": str(BOB),
            "amount": "39.80",
            "currency": "EUR",
            "reason": "insufficient_funds",
        }
    ]


def test_a_declined_order_is_not_charged_by_a_later_repeat_even_with_funds(
    make_wallet: Callable[..., Wallet],
) -> None:
    """The saga has cancelled the order by then: taking the money would strand it."""
    wallet = make_wallet(BOB, "20.00")
    deliver(make_envelope("stock.reserved", stock_reserved(user_id=BOB)))
    wallet_credit(user_id=BOB, amount=Decimal("100.00"))

    deliver(make_envelope("stock.reserved", stock_reserved(user_id=BOB)))

    assert balance_of(BOB) == Decimal("120.00")
    assert Payment.objects.get().status == PaymentStatus.FAILED
    assert [row.event_type for row in OutboxMessage.objects.all()] == ["payment.failed"]
    assert_ledger_explains_balance(wallet)


def test_stock_reserved_for_a_user_without_wallet_publishes_payment_failed() -> None:
    deliver(make_envelope("stock.reserved", stock_reserved(user_id=77)))

    assert not Wallet.objects.exists()
    assert published("payment.failed")[0]["reason"] == "insufficient_funds"
    assert Payment.objects.get().status == PaymentStatus.FAILED


def test_stock_reserved_for_a_user_id_that_is_not_ours_publishes_payment_failed() -> None:
    deliver(make_envelope("stock.reserved", stock_reserved(user_id="u-abc")))

    assert not Payment.objects.exists()
    assert published() == [
        {
            "order_id": "order-1",
            "user_id": "u-abc",
            "amount": "39.80",
            "currency": "EUR",
            "reason": "insufficient_funds",
        }
    ]


def test_stock_reserved_without_amount_charges_nothing(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(ALICE, "100.00")
    payload = stock_reserved()
    for key in ("user_id", "amount", "currency"):
        del payload[key]

    deliver(make_envelope("stock.reserved", payload))

    assert balance_of(ALICE) == Decimal("100.00")
    assert not Payment.objects.exists()
    assert OutboxMessage.objects.count() == 0


# --- order.cancelled -------------------------------------------------------------------


def test_order_cancelled_refunds_a_captured_payment_and_publishes_payment_refunded(
    make_payment: Callable[..., Payment],
) -> None:
    payment = make_payment(order_id="order-1", amount="39.80", balance="100.00")

    event = make_envelope("order.cancelled", cancelled(reason="system_error"))
    deliver(event)
    deliver(event)  # redelivered: nothing more

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REFUNDED
    assert balance_of(ALICE) == Decimal("100.00")
    refund = LedgerEntry.objects.get(kind=LedgerEntryKind.REFUND)
    assert published() == [
        {
            "order_id": "order-1",
            "user_id": str(ALICE),
            "payment_id": str(payment.pk),
            "refund_id": str(refund.pk),
            "amount": "39.80",
            "currency": "EUR",
            "reason": "system_error",
        }
    ]
    assert_ledger_explains_balance(Wallet.objects.get(user_id=ALICE))


def test_order_cancelled_without_a_payment_is_a_no_op(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(ALICE, "100.00")

    deliver(make_envelope("order.cancelled", cancelled("never-charged")))

    assert balance_of(ALICE) == Decimal("100.00")
    assert OutboxMessage.objects.count() == 0


def test_order_cancelled_after_a_declined_charge_is_a_no_op(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(BOB, "20.00")
    deliver(make_envelope("stock.reserved", stock_reserved(user_id=BOB)))
    OutboxMessage.objects.all().delete()

    deliver(make_envelope("order.cancelled", cancelled(reason="insufficient_funds")))

    assert balance_of(BOB) == Decimal("20.00")
    assert Payment.objects.get().status == PaymentStatus.FAILED
    assert OutboxMessage.objects.count() == 0


def test_order_cancelled_after_the_orchestrator_refunded_is_a_no_op(
    make_payment: Callable[..., Payment],
) -> None:
    make_payment(order_id="order-1", amount="39.80", balance="100.00")
    payment_refund(order_id="order-1")  # over HTTP, by the orchestrator

    deliver(make_envelope("order.cancelled", cancelled()))

    assert balance_of(ALICE) == Decimal("100.00")
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.REFUND).count() == 1
    assert OutboxMessage.objects.count() == 0


def test_stock_reserved_after_order_cancelled_charges_nothing_and_publishes_nothing(
    make_wallet: Callable[..., Wallet],
) -> None:
    # The cancellation (e.g. the order's deadline) overtook the reservation's event.
    make_wallet(ALICE, "100.00")
    deliver(make_envelope("order.cancelled", cancelled(reason="system_error")))

    deliver(make_envelope("stock.reserved", stock_reserved()))

    assert balance_of(ALICE) == Decimal("100.00")
    assert not Payment.objects.exists()
    assert OutboxMessage.objects.count() == 0
