"""A slow upstream: a charge that answers after the saga gave up on it.

The customer's wallet row is locked in payment_service's own database, so the
orchestrator's charge request waits on the lock; its HTTP timeout passes on every
attempt and the saga gives up and compensates. Then the lock is let go and the
waiting charge goes through: unless the compensation refuses it (a tombstone left
by a refund that found nothing) or undoes it (the refund, serialised behind the
charge of the same order, finds it and refunds it), a CANCELLED order now has
captured money, which the auditor reports.
"""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal

import pytest
from harness import Devstack, Result, Supervisor, log
from platform_client import REPO_ROOT, Platform
from test_faults import assert_recovered, drive, new_chaos, orders

WORKER = "order_service.worker"
# The saga gives up on the charge quickly: two attempts of 2 s each.
IMPATIENT = {
    "SAGA_STEP_MAX_ATTEMPTS": "2",
    "PAYMENT_SERVICE_TIMEOUT_S": "2",
    "SAGA_RETRY_BACKOFF_S": "0.5",
    "SAGA_RETRY_BACKOFF_MAX_S": "1",
}
HOLD_MAX_S = 240
# Two charge attempts of 2 s with backoffs of at most 1 s, and the worker's turnaround.
GIVE_UP_S = 15


def hold_wallet_lock(user_id: int) -> subprocess.Popen[str]:
    """A transaction in payment_service's database holding the wallet's row lock
    until its standard input closes (bounded by HOLD_MAX_S)."""
    code = (
        "import select, sys\n"
        "from django.db import transaction\n"
        "from payments.models import Wallet\n"
        "with transaction.atomic():\n"
        f"    Wallet.objects.select_for_update().get(user_id={int(user_id)})\n"
        "    print('locked', flush=True)\n"
        f"    select.select([sys.stdin], [], [], {HOLD_MAX_S})\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-m", "devstack", "manage", "payment_service", "shell", "-c", code],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert holder.stdout is not None
    for _ in range(200):
        line = holder.stdout.readline()
        if not line or "locked" in line:
            break
    assert holder.poll() is None, "the lock holder exited before locking"
    return holder


@pytest.mark.needs_compensation_tombstones
def test_a_charge_landing_after_the_saga_gave_up_is_refused_or_undone(
    platform: Platform, devstack: Devstack, supervisor: Supervisor
) -> None:
    chaos = new_chaos("slow upstream (late charge)", platform, devstack, supervisor)
    load = chaos.load(count=orders(10), duration_s=15, workers=2)
    chaos.set_mode("orchestration")
    devstack.overrides[WORKER] = dict(IMPATIENT)
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=Decimal("12.50"))
    slow: dict[str, int] = {}
    try:
        with supervisor.holding(WORKER):
            assert devstack.restart(WORKER)
        holder = hold_wallet_lock(customer.user_id)
        try:
            placed = platform.place_order(customer, [(product, 1)])
            slow["order"] = int(placed["id"])
            # Long enough for every charge attempt to time out and the saga to turn to its
            # compensation (the refund waits on the charge still in flight, or finds nothing).
            time.sleep(GIVE_UP_S)
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=60)
            if holder.stdout is not None:
                holder.stdout.close()
        # The waiting charge goes on now, then the refund: the order ends CANCELLED and
        # either the charge was refused (tombstone) or it was refunded.
        order = platform.wait_terminal(customer, slow["order"], timeout_s=180)
        log(f"{chaos.name}: order {slow['order']} {order['status']} after the late charge")
        assert order["status"] == "CANCELLED", order
    finally:
        devstack.overrides.pop(WORKER, None)
        with supervisor.holding(WORKER):
            assert devstack.restart(WORKER)

    def no_money_taken(result: Result) -> None:
        captured = [p for p in platform.payments(customer) if p["status"] == "CAPTURED"]
        balance = platform.balance(customer)
        if captured or balance != Decimal("100.00"):
            result.notes.append(
                f"cancelled order {slow['order']}: {len(captured)} captured payment(s), balance {balance}"
            )

    healed_at = drive(chaos, load, lambda: None)
    result = chaos.recover(load, healed_at=healed_at, extra=no_money_taken)
    assert_recovered(result)
