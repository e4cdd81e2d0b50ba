"""Admin: a read-only window on money. Balances move only through the services
(and the staff credit endpoint), so the ledger always explains them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import LedgerEntry, Payment, Wallet


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LedgerEntryInline(admin.TabularInline[LedgerEntry, Wallet]):
    model = LedgerEntry
    fields = ("created_at", "kind", "amount", "payment")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "balance", "currency", "updated_at")
    search_fields = ("user_id",)
    inlines = (LedgerEntryInline,)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("id", "order_id", "user_id", "amount", "currency", "status", "failure_code", "created_at")
    list_filter = ("status", "currency")
    search_fields = ("order_id", "user_id")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "wallet", "kind", "amount", "payment", "created_at")
    list_filter = ("kind",)
    list_select_related = ("wallet", "payment")
