"""Request and response shapes. Every field is listed; nothing a client sends
can set a balance, a status, an owner or an id."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework import serializers

from comptoir import MAX_BATCH_ITEMS, ModelSerializer, Serializer

from .models import MONEY_DIGITS, MONEY_PLACES, LedgerEntry, Payment, Wallet


def _amount_field() -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, min_value=Decimal("0.01")
    )


class PaymentSerializer(ModelSerializer[Payment]):
    class Meta:
        model = Payment
        fields = (
            "id",
            "order_id",
            "amount",
            "currency",
            "status",
            "failure_code",
            "created_at",
            "updated_at",
            "captured_at",
            "refunded_at",
        )
        read_only_fields = fields


class LedgerEntrySerializer(ModelSerializer[LedgerEntry]):
    payment_id = serializers.IntegerField(read_only=True, allow_null=True)
    order_id = serializers.CharField(source="payment.order_id", read_only=True, allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = ("id", "kind", "amount", "payment_id", "order_id", "created_at")
        read_only_fields = fields


class WalletSerializer(Serializer[Any]):
    user_id = serializers.IntegerField(read_only=True)
    balance = serializers.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, read_only=True)
    currency = serializers.CharField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    recent_entries = LedgerEntrySerializer(many=True, read_only=True)


class CreditRequestSerializer(Serializer[Any]):
    amount = _amount_field()


class ChargeRequestSerializer(Serializer[Any]):
    order_id = serializers.CharField(max_length=64)
    user_id = serializers.IntegerField(min_value=1)
    amount = _amount_field()
    currency = serializers.CharField(max_length=3)

    def validate_currency(self, value: str) -> str:
        if value not in settings.PAYMENT_CURRENCIES:
            raise serializers.ValidationError(
                f"Unsupported currency; use one of {', '.join(settings.PAYMENT_CURRENCIES)}.",
                code="unsupported_currency",
            )
        return value


class ChargeBatchRequestSerializer(Serializer[Any]):
    """Several charge requests in one (at most 50): each item is validated and run
    on its own, as a request of its own to `POST /internal/payments/charge/`."""

    items = serializers.ListField(child=ChargeRequestSerializer(), min_length=1, max_length=MAX_BATCH_ITEMS)


class RefundRequestSerializer(Serializer[Any]):
    order_id = serializers.CharField(max_length=64)


class PaymentResultSerializer(ModelSerializer[Payment]):
    """What charge and refund answer, the same on a repeat."""

    payment_id = serializers.IntegerField(source="id", read_only=True)

    class Meta:
        model = Payment
        fields = ("payment_id", "order_id", "user_id", "status", "amount", "currency")
        read_only_fields = fields


# --- internal: the reconciliation auditor's pages -----------------------------


class PaymentAuditSerializer(ModelSerializer[Payment]):
    charged = serializers.DecimalField(
        max_digits=14, decimal_places=2, read_only=True, help_text="What its CHARGE entry took."
    )
    refunded = serializers.DecimalField(
        max_digits=14, decimal_places=2, read_only=True, help_text="What its REFUND entry gave back."
    )

    class Meta:
        model = Payment
        fields = (
            "id",
            "order_id",
            "user_id",
            "amount",
            "currency",
            "status",
            "created_at",
            "charged",
            "refunded",
        )
        read_only_fields = fields


class PaymentAuditPageSerializer(Serializer[Any]):
    results = PaymentAuditSerializer(many=True)
    next_after = serializers.IntegerField(
        allow_null=True, help_text="`after` of the next page; null: last page."
    )


class WalletAuditSerializer(ModelSerializer[Wallet]):
    ledger = serializers.DecimalField(
        max_digits=14, decimal_places=2, read_only=True, help_text="The sum of its ledger entries."
    )

    class Meta:
        model = Wallet
        fields = ("id", "user_id", "balance", "currency", "ledger")
        read_only_fields = fields


class WalletAuditPageSerializer(Serializer[Any]):
    results = WalletAuditSerializer(many=True)
    next_after = serializers.IntegerField(
        allow_null=True, help_text="`after` of the next page; null: last page."
    )
