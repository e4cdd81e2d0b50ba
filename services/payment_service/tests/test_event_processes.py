"""The real `consume_events` and `outbox_relay` processes of payment_service against
the real broker: events in, wallets charged / declined / refunded, events out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from comptoir.events import InboxMessage, OutboxMessage
from comptoir.events.testing import ServiceProcesses, make_envelope, payloads_in, produce, wait_for
from payments.models import LedgerEntry, Payment, Wallet

from .conftest import ALICE, BOB, assert_ledger_explains_balance, balance_of

pytestmark = pytest.mark.django_db(transaction=True)


def stock_reserved(user_id: int, amount: str) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()),
        "reservation_id": "5",
        "lines": [{"product_id": "4", "quantity": 1}],
        "user_id": str(user_id),
        "amount": amount,
        "currency": "EUR",
    }


def status_of(order_id: str) -> str | None:
    return Payment.objects.filter(order_id=order_id).values_list("status", flat=True).first()


def test_consumer_process_charges_declines_and_refunds_through_the_broker(
    processes: ServiceProcesses, event_topics: dict[str, str], make_wallet: Callable[..., Wallet]
) -> None:
    make_wallet(ALICE, "500.00")
    make_wallet(BOB, "20.00")
    processes.start("outbox_relay")
    processes.start("consume_events", "--group-id", f"payment_service.test-{uuid.uuid4().hex[:8]}")

    paid = make_envelope("stock.reserved", stock_reserved(ALICE, "59.90"), producer="product_service")
    declined = make_envelope("stock.reserved", stock_reserved(BOB, "59.90"), producer="product_service")
    produce(event_topics["stock.reserved"], paid)
    produce(event_topics["stock.reserved"], paid)  # delivered twice
    produce(event_topics["stock.reserved"], declined)
    wait_for(lambda: status_of(paid.aggregate_id) == "CAPTURED", timeout_s=60, what="the charge")
    wait_for(lambda: status_of(declined.aggregate_id) == "FAILED", timeout_s=30, what="the decline")

    produce(
        event_topics["order.cancelled"],
        make_envelope(
            "order.cancelled",
            {"order_id": paid.aggregate_id, "user_id": str(ALICE), "reason": "system_error"},
        ),
    )
    wait_for(lambda: status_of(paid.aggregate_id) == "REFUNDED", timeout_s=30, what="the refund")
    wait_for(
        lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists(),
        timeout_s=30,
        what="the relay to publish everything",
    )

    payment = Payment.objects.get(order_id=paid.aggregate_id)
    refund = LedgerEntry.objects.get(payment=payment, kind="REFUND")
    assert (balance_of(ALICE), balance_of(BOB)) == (Decimal("500.00"), Decimal("20.00"))
    assert LedgerEntry.objects.filter(kind="CHARGE").count() == 1
    for wallet in Wallet.objects.all():
        assert_ledger_explains_balance(wallet)
    assert InboxMessage.objects.count() == 3  # the duplicate left no second row
    assert payloads_in(event_topics["payment.succeeded"]) == [
        {
            "order_id": paid.aggregate_id,
            "user_id": str(ALICE),
            "payment_id": str(payment.pk),
            "amount": "59.90",
            "currency": "EUR",
        }
    ]
    assert payloads_in(event_topics["payment.failed"]) == [
        {
            "order_id": declined.aggregate_id,
            "user_id": str(BOB),
            "amount": "59.90",
            "currency": "EUR",
            "reason": "insufficient_funds",
        }
    ]
    assert payloads_in(event_topics["payment.refunded"]) == [
        {
            "order_id": paid.aggregate_id,
            "user_id": str(ALICE),
            "payment_id": str(payment.pk),
            "refund_id": str(refund.pk),
            "amount": "59.90",
            "currency": "EUR",
            "reason": "system_error",
        }
    ]
