"""Reads on orders, always scoped to their owner when a user asks."""

from __future__ import annotations

from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from comptoir import NotFoundError

from .errors import OrderErrorCode
from .models import Order, OrderStatus

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
