from django.contrib import admin
from django.http import HttpRequest

from .models import Category, Product, StockLevel, StockReservation, StockReservationLine


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


class StockLevelInline(admin.StackedInline[StockLevel, Product]):
    """Read-only: a stock count goes through the API (`stock_set`), which writes the
    stock ledger entry the reconciliation auditor checks the level against."""

    model = StockLevel
    can_delete = False
    fields = ("quantity", "updated_at")
    readonly_fields = fields


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ("sku", "name", "category", "price", "currency", "is_active", "updated_at")
    list_filter = ("is_active", "category", "currency")
    search_fields = ("sku", "name", "description")
    list_select_related = ("category",)
    readonly_fields = ("created_at", "updated_at")
    inlines = (StockLevelInline,)


class StockReservationLineInline(admin.TabularInline[StockReservationLine, StockReservation]):
    model = StockReservationLine
    fields = ("product", "quantity")
    readonly_fields = fields
    can_delete = False
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: StockReservation | None = None) -> bool:
        return False


@admin.register(StockReservation)
class StockReservationAdmin(admin.ModelAdmin[StockReservation]):
    """Read-only: reservations change only through the internal API, with the stock."""

    list_display = ("order_id", "status", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id",)
    readonly_fields = ("order_id", "status", "created_at", "updated_at")
    inlines = (StockReservationLineInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StockReservation | None = None) -> bool:
        return False
