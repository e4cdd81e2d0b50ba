"""Reads on orders, always scoped to their owner when a user asks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from comptoir import NotFoundError

from .errors import OrderErrorCode
from .models import Order, OrderStatus, ReconciliationRun

# Ids beyond a bigint cannot exist; asking the database would fail instead of "not found".
MAX_ORDER_ID = 2**63 - 1


def order_list_for_user(*, user_id: int) -> QuerySet[Order]:
    """The user's orders, newest first, with their lines."""
    return Order.objects.filter(user_id=user_id).prefetch_related("lines").order_by("-created_at", "-id")


def order_get_for_user(*, user_id: int, order_id: int) -> Order:
    """One of the user's orders with lines, history and saga timeline; another user's is 'not found'."""
    if not 0 < order_id <= MAX_ORDER_ID:
        raise NotFoundError(OrderErrorCode.ORDER_NOT_FOUND, "No such order.")
    order = (
        Order.objects.filter(user_id=user_id, pk=order_id)
        .prefetch_related("lines", "status_history", "timeline")
        .first()
    )
    if order is None:
        raise NotFoundError(OrderErrorCode.ORDER_NOT_FOUND, "No such order.")
    return order


def order_get_by_idempotency_key(*, user_id: int, idempotency_key: str) -> Order | None:
    return Order.objects.filter(user_id=user_id, idempotency_key=idempotency_key).first()


def saga_backlog() -> list[tuple[str, int, float]]:
    """Per saga mode: how many orders are still PENDING and the oldest one's age in seconds."""
    now = timezone.now()
    rows = (
        Order.objects.filter(status=OrderStatus.PENDING)
        .values("saga_mode")
        .annotate(pending=Count("id"), oldest=Min("created_at"))
    )
    return [
        (row["saga_mode"] or "orchestration", int(row["pending"]), (now - row["oldest"]).total_seconds())
        for row in rows
    ]


def saga_ops_overview(*, now: datetime | None = None, pending_limit: int = 10) -> dict[str, Any]:
    """For the operations console: the orders pending longest, the last day's
    cancellations by reason, and the reconciliation auditor's last report."""
    now = now or timezone.now()
    pending = Order.objects.filter(status=OrderStatus.PENDING).order_by("created_at", "id")[:pending_limit]
    cancelled = (
        Order.objects.filter(status=OrderStatus.CANCELLED, updated_at__gte=now - timedelta(hours=24))
        .values("cancel_reason")
        .annotate(count=Count("id"))
        .order_by("-count", "cancel_reason")
    )
    run = ReconciliationRun.objects.order_by("-finished_at", "-id").first()
    return {
        "pending_longest": [
            {
                "id": order.pk,
                "mode": order.saga_mode,
                "status": order.status,
                "age_s": round((now - order.created_at).total_seconds(), 1),
                "user_id": order.user_id,
            }
            for order in pending
        ],
        "cancellations_by_reason": [
            {"reason": row["cancel_reason"] or "unknown", "count": row["count"]} for row in cancelled
        ],
        "reconciliation": None
        if run is None
        else {
            "finished_at": run.finished_at,
            "trigger": run.source,
            "total": run.total,
            "violations": run.violations,
            "samples": run.samples,
            "checked": run.checked,
        },
    }
