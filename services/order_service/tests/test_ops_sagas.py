"""`GET /api/ops/order_service/sagas/`: staff only; the orders pending longest, the last
day's cancellations by reason, the reconciliation auditor's last report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from comptoir.testing import TokenFactory
from orders.models import Order, OrderStatus, ReconciliationRun, SagaMode
from orders.reconciliation import KEPT_RUNS, ReconciliationReport, reconciliation_run_record

URL = "/api/ops/order_service/sagas/"

pytestmark = pytest.mark.django_db


def _aged(order: Order, **delta: float) -> Order:
    """Moves an order back in time (created_at, and updated_at, which auto_now would set)."""
    moment = timezone.now() - timedelta(**delta)
    Order.objects.filter(pk=order.pk).update(created_at=moment, updated_at=moment)
    return order


def test_staff_only(client: Client, tokens: TokenFactory) -> None:
    assert client.get(URL).status_code == 401
    for token in (tokens.user(7), tokens.service("api_gateway")):
        response = client.get(URL, headers=tokens.header(token))
        assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
    assert client.get(URL, headers=tokens.header(tokens.user(1, is_staff=True))).status_code == 200


def test_pending_longest_first_and_cancellations_of_the_last_day_by_reason(
    client: Client, tokens: TokenFactory, make_order: Callable[..., Order]
) -> None:
    pending = [_aged(make_order(user_id=10 + n), minutes=n) for n in range(12)]
    Order.objects.filter(pk=pending[11].pk).update(saga_mode=SagaMode.CHOREOGRAPHY)
    make_order(status=OrderStatus.CONFIRMED)
    for reason in ["insufficient_stock", "insufficient_funds", "insufficient_funds"]:
        make_order(status=OrderStatus.CANCELLED, cancel_reason=reason)
    _aged(make_order(status=OrderStatus.CANCELLED, cancel_reason="user_inactive"), hours=25)

    body = client.get(URL, headers=tokens.header(tokens.user(1, is_staff=True))).json()

    longest = body["pending_longest"]
    assert [row["id"] for row in longest] == [order.pk for order in reversed(pending)][:10]
    assert {k: v for k, v in longest[0].items() if k != "age_s"} == {
        "id": pending[11].pk,
        "mode": "choreography",
        "status": "PENDING",
        "user_id": 21,
    }
    assert 11 * 60 <= longest[0]["age_s"] < 12 * 60
    assert body["cancellations_by_reason"] == [
        {"reason": "insufficient_funds", "count": 2},
        {"reason": "insufficient_stock", "count": 1},
    ]
    assert body["reconciliation"] is None


@pytest.mark.usefixtures("upstreams")
def test_the_last_reconciliation_report_is_served(
    client: Client, tokens: TokenFactory, make_order: Callable[..., Order], settings: Any
) -> None:
    order = make_order(status=OrderStatus.CONFIRMED)
    with pytest.raises(CommandError):
        call_command("reconcile", "--settle-seconds", "0", stdout=StringIO())

    report = client.get(URL, headers=tokens.header(tokens.user(1, is_staff=True))).json()["reconciliation"]
    assert report["trigger"] == "command"
    assert report["total"] == 2
    assert report["violations"]["confirmed_without_capture"] == 1
    assert report["violations"]["cancelled_with_capture"] == 0
    assert report["samples"] == {
        "confirmed_without_capture": [str(order.pk)],
        "confirmed_without_commit": [str(order.pk)],
    }
    assert report["checked"]["orders"] == 1
    assert ReconciliationRun.objects.count() == 1


def test_only_the_newest_reports_are_kept() -> None:
    for _ in range(KEPT_RUNS + 3):
        last = reconciliation_run_record(report=ReconciliationReport(sample_size=1), source="beat")
    assert ReconciliationRun.objects.count() == KEPT_RUNS
    assert ReconciliationRun.objects.first() == last
