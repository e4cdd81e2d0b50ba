"""The reconciliation auditor against the running platform: clean after orders
settle in both saga modes, and it names each invariant broken behind its back
(through the owning service's own ORM) with a non-zero exit."""

from __future__ import annotations

import re
import subprocess
import uuid
from decimal import Decimal

from platform_client import Platform, django_shell, manage, wait_for

PRICE = Decimal("12.50")
# Rows this young are still settling (choreography refunds after cancelling).
SETTLE = ["--settle-seconds", "5", "--deadline-seconds", "600"]


def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
    result = manage("order_service", "reconcile", *args)
    assert result.returncode in (0, 1), f"reconcile could not run:\n{result.stdout}\n{result.stderr}"
    return result


def violations(output: str) -> dict[str, tuple[int, list[str]]]:
    """kind -> (count, first offending ids) from the printed report."""
    found = {}
    for match in re.finditer(r"^  (\w+)\s+(\d+)(?: \(first: (.*)\))?$", output, re.MULTILINE):
        kind, count, sample = match.groups()
        found[kind] = (int(count), sample.split(", ") if sample else [])
    return found


def until_clean(what: str) -> subprocess.CompletedProcess[str]:
    """Runs the auditor until it finds nothing (rows settle), or fails showing its last report."""
    last: list[subprocess.CompletedProcess[str]] = []

    def clean_run() -> subprocess.CompletedProcess[str] | None:
        last[:] = [reconcile(*SETTLE)]
        return last[0] if last[0].returncode == 0 else None

    try:
        return wait_for(clean_run, timeout_s=90, interval_s=3, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}; last report:\n{last[0].stdout}") from None


def test_a_settled_platform_reconciles_with_zero_violations(platform: Platform, saga_mode: str) -> None:
    customer = platform.new_customer(balance=Decimal("30.00"))
    product = platform.new_product(stock=3, price=PRICE)
    # One after the other: concurrent sagas would race for the wallet.
    finished = [
        platform.wait_terminal(customer, platform.place_order(customer, lines)["id"])
        for lines in ([(product, 2)], [(product, 1)], [(product, 5)])
    ]
    assert [(o["status"], o["cancel_reason"] or None) for o in finished] == [
        ("CONFIRMED", None),
        ("CANCELLED", "insufficient_funds"),
        ("CANCELLED", "insufficient_stock"),
    ]

    result = until_clean("a reconciliation run with 0 violations")

    report = violations(result.stdout)
    assert len(report) == 12, result.stdout
    assert {count for count, _ in report.values()} == {0}, result.stdout
    assert "reconciliation: 0 violation(s)" in result.stdout
    assert re.search(r"checked [1-9]\d* orders, [1-9]\d* payments, [1-9]\d* reservations", result.stdout)


def test_each_broken_invariant_is_reported_by_kind_with_a_non_zero_exit(platform: Platform) -> None:
    customer = platform.new_customer(balance=Decimal("50.00"))
    product = platform.new_product(stock=4, price=PRICE)
    placed = platform.place_order(customer, [(product, 1)])
    assert platform.wait_terminal(customer, placed["id"])["status"] == "CONFIRMED"
    order_id = int(placed["id"])
    orphan = f"e2e-orphan-{uuid.uuid4().hex[:12]}"
    wallet_of = f"wallet of user {customer.user_id}"

    # Each owner's ORM, in its own database: money and stock moved behind the ledgers,
    # an order cancelled while its money and stock stay taken, a payment of no order.
    # Each one is undone afterwards, so the platform is left as consistent as it was.
    undo: list[tuple[str, str]] = []
    try:
        django_shell(
            "payment_service",
            "from django.db.models import F; from payments.models import Wallet; "
            f"assert Wallet.objects.filter(user_id={customer.user_id}).update(balance=F('balance') + 1) == 1",
        )
        undo.append(
            (
                "payment_service",
                "from django.db.models import F; from payments.models import Wallet; "
                f"Wallet.objects.filter(user_id={customer.user_id}).update(balance=F('balance') - 1)",
            )
        )
        undo.append(
            (
                "payment_service",
                f"from payments.models import Payment; Payment.objects.filter(order_id='{orphan}').delete()",
            )
        )
        created = django_shell(
            "payment_service",
            f"from payments.models import Payment; print(Payment.objects.create(order_id='{orphan}', "
            f"user_id={customer.user_id}, amount=1, currency='EUR', status='FAILED').pk)",
        )
        orphan_id = int(created.split()[-1])  # the last line printed: the new payment's id
        django_shell(
            "product_service",
            "from django.db.models import F; from catalog.models import StockLevel; "
            f"assert StockLevel.objects.filter(product_id={product}).update(quantity=F('quantity') + 1) == 1",
        )
        undo.append(
            (
                "product_service",
                "from django.db.models import F; from catalog.models import StockLevel; "
                f"StockLevel.objects.filter(product_id={product}).update(quantity=F('quantity') - 1)",
            )
        )
        django_shell(
            "order_service",
            "from orders.models import Order; "
            f"assert Order.objects.filter(pk={order_id})"
            ".update(status='CANCELLED', cancel_reason='system_error') == 1",
        )
        undo.append(
            (
                "order_service",
                "from orders.models import Order; "
                f"Order.objects.filter(pk={order_id}).update(status='CONFIRMED', cancel_reason=None)",
            )
        )

        result = reconcile("--settle-seconds", "0", "--deadline-seconds", "600", "--sample-size", "50")

        assert result.returncode == 1, result.stdout
        report = violations(result.stdout)
        assert str(order_id) in report["cancelled_with_capture"][1], result.stdout
        assert str(order_id) in report["cancelled_with_stock"][1], result.stdout
        assert wallet_of in report["wallet_ledger_mismatch"][1], result.stdout
        assert f"product {product}" in report["stock_ledger_mismatch"][1], result.stdout
        assert f"payment {orphan_id}" in report["payment_without_order"][1], result.stdout
        assert "violation(s) of the cross-service invariants" in result.stderr
    finally:
        for service, code in reversed(undo):
            django_shell(service, code)

    repaired = until_clean("0 violations once repaired")
    assert "reconciliation: 0 violation(s)" in repaired.stdout
