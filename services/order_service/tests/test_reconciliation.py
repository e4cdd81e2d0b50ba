"""The reconciliation auditor (orders.reconciliation, `manage.py reconcile`, the
beat task) against the HTTP stand-ins' audit routes: orders settled by the real
saga reconcile clean; each invariant broken is reported by kind, with its ids.

tests/e2e/test_reconciliation.py runs the same against the real services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from comptoir import metrics
from orders.models import Order, OrderStatus, ReconciliationRun
from orders.reconciliation import ReconciliationReport, ViolationKind, reconcile
from orders.tasks import reconcile as reconcile_task

from .conftest import ALICE, BOB, Upstreams

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("upstreams")]


def found(report: ReconciliationReport) -> dict[str, int]:
    return {kind: count for kind, count in report.by_kind().items() if count}


@pytest.fixture
def settle(settle: Callable[..., Order], upstreams: Upstreams) -> Callable[..., Order]:
    """conftest's `settle` (the order placed through the API, its orchestrated saga
    run in-process); a confirmed order's stock is then committed, as
    product_service does on `order.confirmed`."""

    def run(lines: list[tuple[int, int]], *, user_id: int = ALICE) -> Order:
        order = settle(lines, user_id=user_id)
        if order.status == OrderStatus.CONFIRMED:
            upstreams.products.order_confirmed(str(order.pk))
        return order

    return run


def test_settled_orders_reconcile_with_zero_violations(
    settle: Callable[..., Order], upstreams: Upstreams
) -> None:
    confirmed = settle([(1, 2), (3, 5)])
    no_funds = settle([(2, 1)], user_id=BOB)  # 89.99 out of a 20.00 wallet
    upstreams.products.refuse("reserve", 409, "insufficient_stock")
    no_stock = settle([(1, 1)])
    assert [o.status for o in (confirmed, no_funds, no_stock)] == ["CONFIRMED", "CANCELLED", "CANCELLED"]

    report = reconcile(settle_s=0, deadline_s=600)

    assert found(report) == {}
    assert report.total == 0
    assert report.checked == {"orders": 3, "payments": 1, "reservations": 2, "wallets": 3, "products": 55}


def test_each_broken_invariant_is_reported_with_its_ids(
    settle: Callable[..., Order], make_order: Callable[..., Order], upstreams: Upstreams
) -> None:
    confirmed = settle([(1, 2)])
    refunded = settle([(3, 1)])
    cancelled = settle([(2, 1)], user_id=BOB)
    no_money = make_order(status=OrderStatus.CONFIRMED, lines=[(1, 1)])
    stuck = make_order(status=OrderStatus.PENDING)
    Order.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(hours=1))
    # Another service's rows as they would be if something went wrong there.
    upstreams.payments.payments[str(confirmed.pk)]["amount"] = Decimal("1.00")
    upstreams.payments.payments[str(cancelled.pk)] = {
        "payment_id": 90,
        "status": "CAPTURED",
        "amount": cancelled.total,
        "user_id": BOB,
    }
    upstreams.payments.payments["no-such-order"] = {
        "payment_id": 91,
        "status": "REFUNDED",
        "amount": Decimal("3.00"),
        "user_id": BOB,
    }
    upstreams.payments.wallets[BOB] -= cancelled.total  # the capture took the money
    upstreams.products.reservations[str(refunded.pk)]["lines"] = [{"product_id": 3, "quantity": 2}]
    upstreams.products.stock[3] -= 1  # and the unit it holds more
    # An order id no order has (the test database's ids keep growing across tests).
    upstreams.products.reservations[str(stuck.pk + 10_000)] = {"status": "RESERVED", "lines": []}
    upstreams.products.stock[100] += 1
    upstreams.payments.wallets[ALICE] += Decimal("0.01")

    report = reconcile(settle_s=0, deadline_s=600)

    assert found(report) == {
        "confirmed_without_capture": 1,
        "confirmed_amount_mismatch": 1,
        "confirmed_without_commit": 1,
        "confirmed_lines_mismatch": 1,
        "cancelled_with_capture": 1,
        "order_pending_past_deadline": 1,
        "payment_without_order": 1,
        "reservation_without_order": 1,
        "wallet_ledger_mismatch": 1,
        "stock_ledger_mismatch": 1,
    }
    assert report.samples == {
        ViolationKind.CONFIRMED_AMOUNT_MISMATCH: [str(confirmed.pk)],
        ViolationKind.CONFIRMED_LINES_MISMATCH: [str(refunded.pk)],
        ViolationKind.CANCELLED_WITH_CAPTURE: [str(cancelled.pk)],
        ViolationKind.CONFIRMED_WITHOUT_CAPTURE: [str(no_money.pk)],
        ViolationKind.CONFIRMED_WITHOUT_COMMIT: [str(no_money.pk)],
        ViolationKind.ORDER_PENDING_PAST_DEADLINE: [str(stuck.pk)],
        ViolationKind.PAYMENT_WITHOUT_ORDER: ["payment 91"],
        ViolationKind.RESERVATION_WITHOUT_ORDER: [f"reservation {len(upstreams.products.reservations)}"],
        ViolationKind.WALLET_LEDGER_MISMATCH: [f"wallet of user {ALICE}"],
        ViolationKind.STOCK_LEDGER_MISMATCH: ["product 100"],
    }


def test_orders_and_rows_in_flight_are_not_judged(
    settle: Callable[..., Order], make_order: Callable[..., Order], upstreams: Upstreams
) -> None:
    cancelled = settle([(2, 1)], user_id=BOB)
    make_order(status=OrderStatus.PENDING)  # placed just now: its saga has time left
    upstreams.payments.payments[str(cancelled.pk)] = {
        "payment_id": 90,
        "status": "CAPTURED",
        "amount": cancelled.total,
        "user_id": BOB,
    }
    upstreams.payments.wallets[BOB] -= cancelled.total

    report = reconcile(settle_s=300, deadline_s=600)

    assert found(report) == {}
    assert report.checked["orders"] == 0


def test_small_pages_find_the_same(settle: Callable[..., Order], make_order: Callable[..., Order]) -> None:
    for _ in range(3):
        settle([(1, 1)])
    for _ in range(2):
        make_order(status=OrderStatus.CONFIRMED)

    one_by_one = reconcile(page_size=1, settle_s=0, deadline_s=600)
    at_once = reconcile(page_size=500, settle_s=0, deadline_s=600)

    assert (
        found(one_by_one) == found(at_once) == {"confirmed_without_capture": 2, "confirmed_without_commit": 2}
    )
    assert one_by_one.checked == at_once.checked
    assert one_by_one.checked["orders"] == 5


def test_the_command_prints_the_report_and_exits_1_on_violations(make_order: Callable[..., Order]) -> None:
    clean, out = StringIO(), StringIO()
    call_command("reconcile", "--settle-seconds", "0", stdout=clean)
    order = make_order(status=OrderStatus.CONFIRMED)

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--settle-seconds", "0", "--since", "1", stdout=out)

    assert "reconciliation: 0 violation(s)" in clean.getvalue()
    assert raised.value.returncode == 1
    assert f"  confirmed_without_capture      1 (first: {order.pk})" in out.getvalue().splitlines()
    assert "reconciliation: 2 violation(s)" in out.getvalue()


def test_the_command_exits_2_when_a_service_cannot_be_asked(upstreams: Upstreams) -> None:
    upstreams.payments.refuse("audit_wallets", 403, "insufficient_scope")

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", stdout=StringIO())

    assert raised.value.returncode == 2
    assert "/internal/payments/audit/wallets/ answered HTTP 403" in str(raised.value)


def test_the_beat_task_exports_every_kind_as_a_gauge(make_order: Callable[..., Order], settings: Any) -> None:
    settings.RECONCILE_SETTLE_S = 0
    make_order(status=OrderStatus.CONFIRMED)

    expected: dict[str, int] = {
        **{kind.value: 0 for kind in ViolationKind},
        "confirmed_without_capture": 1,
        "confirmed_without_commit": 1,
    }
    assert reconcile_task() == expected

    text = metrics.render(include_database=False)[0].decode()
    assert (
        'comptoir_reconciliation_violations{kind="confirmed_without_capture",service="order_service"} 1.0'
        in text
    )
    assert (
        'comptoir_reconciliation_violations{kind="wallet_ledger_mismatch",service="order_service"} 0.0'
        in text
    )
    assert "comptoir_reconciliation_last_run_timestamp_seconds{" in text


def test_the_beat_task_looks_at_the_window_and_the_command_at_all_history(
    make_order: Callable[..., Order], settings: Any
) -> None:
    settings.RECONCILE_SETTLE_S = 0
    settings.RECONCILE_WINDOW_S = 24 * 3600
    old = make_order(status=OrderStatus.CONFIRMED)
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))

    assert reconcile_task()["confirmed_without_capture"] == 0  # three days old: outside the window
    assert found(reconcile(settle_s=0, deadline_s=600))["confirmed_without_capture"] == 1

    settings.RECONCILE_WINDOW_S = 0  # all of history
    assert reconcile_task()["confirmed_without_capture"] == 1


def test_a_periodic_run_judges_what_settled_since_the_previous_one_could_judge(
    make_order: Callable[..., Order], settings: Any
) -> None:
    settings.RECONCILE_SETTLE_S = 0
    settings.RECONCILE_INTERVAL_S = 60
    settings.RECONCILE_WINDOW_S = 24 * 3600
    judged = make_order(status=OrderStatus.CONFIRMED)  # no payment anywhere: confirmed_without_capture
    stuck = make_order()  # PENDING, placed two hours ago: past its deadline
    Order.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(hours=2))

    first = reconcile_task()
    assert (first["confirmed_without_capture"], first["order_pending_past_deadline"]) == (1, 1)

    # `judged` settled an hour before the first run's cutoff: that run judged it, the next does not.
    Order.objects.filter(pk=judged.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    new = make_order(status=OrderStatus.CONFIRMED)
    second = reconcile_task()
    assert (second["confirmed_without_capture"], second["order_pending_past_deadline"]) == (1, 1)
    last = ReconciliationRun.objects.first()
    assert last is not None
    assert last.samples["confirmed_without_capture"] == [str(new.pk)]
    assert last.checked["orders"] == 2  # `new` and the stuck order, not `judged` again

    # The command still reads all of history.
    assert found(reconcile(settle_s=0, deadline_s=600))["confirmed_without_capture"] == 2


def test_the_next_periodic_run_starts_the_overlap_before_the_previous_cutoff(
    make_order: Callable[..., Order], settings: Any
) -> None:
    """Rows the previous run could not see yet (committed late, a clock apart) are
    judged again within RECONCILE_OVERLAP_S of its cutoff; older ones are not."""
    settings.RECONCILE_SETTLE_S = 0
    settings.RECONCILE_INTERVAL_S = 60
    settings.RECONCILE_OVERLAP_S = 30
    settings.RECONCILE_WINDOW_S = 24 * 3600
    reconcile_task()
    first = ReconciliationRun.objects.first()
    assert first is not None
    assert first.judged_until is not None
    within = make_order(status=OrderStatus.CONFIRMED)
    before = make_order(status=OrderStatus.CONFIRMED)
    Order.objects.filter(pk=within.pk).update(updated_at=first.judged_until - timedelta(seconds=20))
    Order.objects.filter(pk=before.pk).update(updated_at=first.judged_until - timedelta(seconds=40))

    assert reconcile_task()["confirmed_without_capture"] == 1
    last = ReconciliationRun.objects.first()
    assert last is not None
    assert last.samples["confirmed_without_capture"] == [str(within.pk)]
