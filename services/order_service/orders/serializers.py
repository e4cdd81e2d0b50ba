"""The API's shapes. Explicit fields only; everything but the lines' product ids
and quantities is computed by the service, so nothing else is writable."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from comptoir import ModelSerializer, Serializer

from .models import Order, OrderLine, OrderStatusChange, SagaTimelineEntry
from .services import MAX_LINES, MAX_QUANTITY

MAX_PRODUCT_ID = 2**63 - 1


class OrderLineInputSerializer(Serializer[Any]):
    product_id = serializers.IntegerField(min_value=1, max_value=MAX_PRODUCT_ID)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class OrderCreateInputSerializer(Serializer[Any]):
    """1 to 50 lines, one per product (a repeated product id is refused:
    `duplicate_product`). Prices, totals, status and owner are not inputs:
    any such field in the body is ignored."""

    lines = serializers.ListSerializer[Any](
        child=OrderLineInputSerializer(), min_length=1, max_length=MAX_LINES
    )


class OrderLineSerializer(ModelSerializer[OrderLine]):
    class Meta:
        model = OrderLine
        fields = ("product_id", "product_name", "quantity", "unit_price", "line_total")
        read_only_fields = fields


class OrderStatusChangeSerializer(ModelSerializer[OrderStatusChange]):
    class Meta:
        model = OrderStatusChange
        fields = ("from_status", "to_status", "reason", "at")
        read_only_fields = fields


class SagaTimelineEntrySerializer(ModelSerializer[SagaTimelineEntry]):
    """One step outcome of the order's saga; `error` is a reason code when it failed."""

    class Meta:
        model = SagaTimelineEntry
        fields = ("step", "status", "at", "error")
        read_only_fields = fields


class OrderSerializer(ModelSerializer[Order]):
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields: tuple[str, ...] = (
            "id",
            "status",
            "cancel_reason",
            "total",
            "currency",
            "lines",
            "created_at",
            "updated_at",
        )
        read_only_fields: tuple[str, ...] = fields


class OrderDetailSerializer(OrderSerializer):
    status_history = OrderStatusChangeSerializer(many=True, read_only=True)
    timeline = SagaTimelineEntrySerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = (*OrderSerializer.Meta.fields, "saga_mode", "status_history", "timeline")
        read_only_fields = fields


class PendingSagaSerializer(Serializer[Any]):
    id = serializers.IntegerField()
    mode = serializers.CharField(allow_null=True, help_text="orchestration or choreography")
    status = serializers.CharField()
    age_s = serializers.FloatField()
    user_id = serializers.IntegerField()


class CancellationCountSerializer(Serializer[Any]):
    reason = serializers.CharField()
    count = serializers.IntegerField()


class ReconciliationReportSerializer(Serializer[Any]):
    finished_at = serializers.DateTimeField()
    trigger = serializers.CharField(help_text="beat (the periodic auditor) or command (manage.py reconcile)")
    total = serializers.IntegerField()
    violations = serializers.DictField(child=serializers.IntegerField(), help_text="kind -> count")
    samples = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), help_text="kind -> first offending ids"
    )
    checked = serializers.DictField(child=serializers.IntegerField())


class SagaOpsSerializer(Serializer[Any]):
    pending_longest = PendingSagaSerializer(many=True)
    cancellations_by_reason = CancellationCountSerializer(many=True, help_text="The last 24 hours.")
    reconciliation = ReconciliationReportSerializer(allow_null=True)
