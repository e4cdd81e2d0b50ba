"""Charges racing for one wallet, each thread on its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from payments.errors import InsufficientFunds, OrderCompensated, PaymentNotFound
from payments.models import ChargeTombstone, LedgerEntry, LedgerEntryKind, Payment, PaymentStatus, Wallet
from payments.services import payment_charge, payment_refund

from .conftest import ALICE, CHARGE_URL, assert_ledger_explains_balance

THREADS = 10
DEADLINE_S = 60


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs `work(i)` in `count` threads released at once; each closes its connection."""
    barrier = threading.Barrier(count, timeout=DEADLINE_S)

    def task(index: int) -> Any:
        try:
            barrier.wait()
            return work(index)
        except InsufficientFunds as declined:
            return declined
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(task, index) for index in range(count)]
        return [future.result(timeout=DEADLINE_S) for future in futures]


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_never_overdraw_the_wallet(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(user_id=ALICE, balance="50.00")

    results = run_together(
        THREADS,
        lambda i: payment_charge(
            order_id=f"order-{i}", user_id=ALICE, amount=Decimal("10.00"), currency="EUR"
        ),
    )

    captured = [r for r in results if isinstance(r, Payment)]
    declined = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(captured), len(declined)) == (5, 5)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("0.00")
    assert Payment.objects.filter(status=PaymentStatus.CAPTURED).count() == 5
    assert Payment.objects.filter(status=PaymentStatus.FAILED).count() == 5
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).count() == 5
    assert_ledger_explains_balance(wallet)


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_one_charge_debit_once(
    make_wallet: Callable[..., Wallet],
    service_headers: dict[str, str],
    charge_body: Callable[..., dict[str, Any]],
) -> None:
    """Through the HTTP API: the order service retrying one charge from several workers."""
    wallet = make_wallet(user_id=ALICE, balance="100.00")

    def post(_index: int) -> tuple[int, Any]:
        response = Client().post(
            CHARGE_URL, charge_body(amount="30.00"), content_type="application/json", headers=service_headers
        )
        return response.status_code, response.json()

    results = run_together(6, post)

    assert {status for status, _body in results} == {201}
    assert len({body["payment_id"] for _status, body in results}) == 1
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("70.00")
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).count() == 1
    assert_ledger_explains_balance(wallet)


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_credit_once(make_payment: Callable[..., Payment]) -> None:
    make_payment(order_id="order-1", amount="25.00", balance="25.00")

    results = run_together(6, lambda _i: payment_refund(order_id="order-1"))

    assert {(p.status, p.amount) for p in results} == {(PaymentStatus.REFUNDED, Decimal("25.00"))}
    wallet = Wallet.objects.get(user_id=ALICE)
    assert wallet.balance == Decimal("25.00")
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.REFUND).count() == 1
    assert_ledger_explains_balance(wallet)


@pytest.mark.django_db(transaction=True)
def test_a_refund_racing_a_charge_of_the_same_order_never_leaves_money_taken(
    make_wallet: Callable[..., Wallet],
) -> None:
    """Either the charge lands first and the refund pays it back, or the refund
    leaves its tombstone first and the charge is refused: never a capture left."""
    wallet = make_wallet(user_id=ALICE, balance="100.00")
    orders = [f"order-{i}" for i in range(THREADS // 2)]

    def work(index: int) -> Any:
        order_id = orders[index // 2]
        try:
            if index % 2:
                return payment_refund(order_id=order_id)
            return payment_charge(order_id=order_id, user_id=ALICE, amount=Decimal("10.00"), currency="EUR")
        except (PaymentNotFound, OrderCompensated) as refused:
            return refused

    run_together(THREADS, work)

    wallet.refresh_from_db()
    assert wallet.balance == Decimal("100.00")
    assert not Payment.objects.filter(status=PaymentStatus.CAPTURED).exists()
    for order_id in orders:
        refunded = Payment.objects.filter(order_id=order_id, status=PaymentStatus.REFUNDED).exists()
        tombstoned = ChargeTombstone.objects.filter(order_id=order_id).exists()
        assert refunded != tombstoned, order_id
    assert_ledger_explains_balance(wallet)
