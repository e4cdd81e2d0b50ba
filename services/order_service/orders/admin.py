"""Orders in the admin: to look at, not to edit. Orders are placed through the
API and their status moves only through `order_transition` (which keeps the
history), so the admin offers neither add nor change of those fields."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Order, OrderLine, OrderSaga, OrderStatusChange, SagaTimelineEntry


class _ReadOnlyInline(admin.TabularInline[Any, Order]):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderLineInline(_ReadOnlyInline):
    model = OrderLine
    fields = ("product_id", "product_name", "quantity", "unit_price", "line_total")


class OrderStatusChangeInline(_ReadOnlyInline):
    model = OrderStatusChange
    fields = ("from_status", "to_status", "reason", "at")


class SagaTimelineInline(_ReadOnlyInline):
    model = SagaTimelineEntry
    fields = ("step", "status", "error", "at")


class OrderSagaInline(admin.StackedInline[OrderSaga, Order]):
    model = OrderSaga
    can_delete = False
    fields = (
        "status",
        "current_step",
        "attempts",
        "failure_reason",
        "last_error",
        "compensation_plan",
        "reservation_id",
        "payment_id",
        "stall_deadline",
        "updated_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    list_display = ("id", "user_id", "status", "cancel_reason", "total", "currency", "created_at")
    list_filter = ("status", "cancel_reason", "saga_mode")
    search_fields = ("=id", "=user_id", "=idempotency_key")
    date_hierarchy = "created_at"
    inlines = (OrderLineInline, OrderStatusChangeInline, OrderSagaInline, SagaTimelineInline)
    readonly_fields = (
        "user_id",
        "status",
        "cancel_reason",
        "total",
        "currency",
        "idempotency_key",
        "idempotency_fingerprint",
        "saga_mode",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        # The change page stays viewable (view permission); nothing on it is editable.
        return False


@admin.register(OrderSaga)
class OrderSagaAdmin(admin.ModelAdmin[OrderSaga]):
    """Every saga's state, to find the stuck or failed ones (filters) or one order's (search)."""

    list_display = (
        "order",
        "status",
        "current_step",
        "attempts",
        "failure_reason",
        "reservation_id",
        "payment_id",
        "stall_deadline",
        "updated_at",
    )
    list_filter = ("status", "current_step", "failure_reason")
    search_fields = ("=order__id", "=reservation_id", "=payment_id")
    search_help_text = "Order id, reservation id or payment id."
    list_select_related = ("order",)
    ordering = ("-updated_at",)
    readonly_fields = (*list_display, "compensation_plan", "last_error", "created_at")
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OrderSaga | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OrderSaga | None = None) -> bool:
        return False


@admin.register(SagaTimelineEntry)
class SagaTimelineEntryAdmin(admin.ModelAdmin[SagaTimelineEntry]):
    """The saga's steps across orders: which step fails, and how often."""

    list_display = ("order", "step", "status", "error", "at")
    list_filter = ("step", "status")
    search_fields = ("=order__id",)
    search_help_text = "Order id."
    list_select_related = ("order",)
    ordering = ("-at",)
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SagaTimelineEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SagaTimelineEntry | None = None) -> bool:
        return False
