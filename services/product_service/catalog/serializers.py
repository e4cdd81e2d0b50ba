"""Request and response shapes. Input serializers name every writable field;
anything else a client sends (id, stock, timestamps...) is ignored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.validators import slug_re
from django.utils.encoding import smart_str
from rest_framework import serializers

from comptoir import MAX_BATCH_ITEMS, ModelSerializer, Serializer

from .models import Category, Product, StockLevel, StockReservation, StockReservationLine
from .selectors import DEFAULT_PRODUCT_ORDERING, PRODUCT_ORDERINGS, RequestedLine, StockBalance

MAX_LINE_QUANTITY = 10_000
MAX_LINES = 100
MAX_STOCK = 2_147_483_647  # the column is a PostgreSQL integer
ORDER_ID_MAX_LENGTH = 64


def _money(*, max_digits: int | None = 10, **kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=max_digits, decimal_places=2, **kwargs)


# --- catalogue ---------------------------------------------------------------


class CategorySerializer(ModelSerializer[Category]):
    class Meta:
        model = Category
        fields = ("id", "name", "slug")
        read_only_fields = fields


class CategoryInputSerializer(Serializer[Any]):
    name = serializers.CharField(max_length=100)
    slug = serializers.SlugField(max_length=100)


class ProductSerializer(ModelSerializer[Product]):
    category: serializers.SlugRelatedField[Category] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    stock = serializers.IntegerField(source="available", read_only=True, help_text="Quantity available.")

    class Meta:
        model = Product
        fields = (
            "id",
            "sku",
            "name",
            "description",
            "price",
            "currency",
            "category",
            "is_active",
            "stock",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class CategorySlugField(serializers.SlugRelatedField[Category]):
    """A category by its slug; a value that is no slug is refused before the lookup
    (PostgreSQL refuses a NUL in a query, which would otherwise be a 500)."""

    def to_internal_value(self, data: Any) -> Category:
        if not isinstance(data, str) or not slug_re.match(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=smart_str(data))
        category: Category = super().to_internal_value(data)
        return category


class ProductInputSerializer(Serializer[Any]):
    sku = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    price = _money(min_value=Decimal("0.01"))
    currency = serializers.RegexField(
        r"^[A-Z]{3}$", max_length=3, required=False, default="EUR", help_text="ISO 4217 code."
    )
    category = CategorySlugField(slug_field="slug", queryset=Category.objects.all())
    is_active = serializers.BooleanField(required=False, default=True)


class StockInputSerializer(Serializer[Any]):
    quantity = serializers.IntegerField(min_value=0, max_value=MAX_STOCK)


class StockSerializer(ModelSerializer[StockLevel]):
    product_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = StockLevel
        fields = ("product_id", "quantity")
        read_only_fields = fields


class ProductListQuerySerializer(Serializer[Any]):
    """The catalogue's query parameters; a bad value is a 400, never a 500."""

    category = serializers.SlugField(required=False, help_text="Category slug.")
    min_price = _money(required=False, min_value=Decimal("0"))
    max_price = _money(required=False, min_value=Decimal("0"))
    search = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="In name, description or SKU."
    )
    ordering = serializers.ChoiceField(
        choices=sorted(PRODUCT_ORDERINGS), required=False, default=DEFAULT_PRODUCT_ORDERING
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"max_price": ["Must not be below min_price."]})
        return attrs


# --- internal: quotes and reservations ----------------------------------------


class RequestedLineSerializer(Serializer[Any]):
    product_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_LINE_QUANTITY)


class LinesInputSerializer(Serializer[Any]):
    lines = RequestedLineSerializer(many=True, allow_empty=False)

    def validate_lines(self, lines: list[dict[str, int]]) -> list[dict[str, int]]:
        if len(lines) > MAX_LINES:
            raise serializers.ValidationError(f"At most {MAX_LINES} lines.")
        ids = [line["product_id"] for line in lines]
        duplicates = sorted({product_id for product_id in ids if ids.count(product_id) > 1})
        if duplicates:
            raise serializers.ValidationError(f"Each product may appear once; repeated: {duplicates}.")
        return lines

    def requested_lines(self) -> list[RequestedLine]:
        return [RequestedLine(**line) for line in self.validated_data["lines"]]


class ReservedLineSerializer(RequestedLineSerializer):
    unit_price = _money(
        min_value=Decimal("0.00"),
        required=False,
        help_text="The price the order was placed at: the line is held only if the catalogue's is the same.",
    )


class ReservationInputSerializer(LinesInputSerializer):
    order_id = serializers.CharField(max_length=ORDER_ID_MAX_LENGTH)
    lines = ReservedLineSerializer(many=True, allow_empty=False)
    currency = serializers.RegexField(
        r"^[A-Z]{3}$",
        max_length=3,
        required=False,
        help_text="The order's currency (ISO 4217): with `unit_price`, the products must be priced in it.",
    )


class ReservationBatchInputSerializer(Serializer[Any]):
    """Several reservation requests in one (at most 50): each item is validated and
    run on its own, as a request of its own to `POST /internal/stock/reservations/`."""

    items = serializers.ListField(
        child=ReservationInputSerializer(), min_length=1, max_length=MAX_BATCH_ITEMS
    )


class QuoteLineSerializer(Serializer[Any]):
    product_id = serializers.IntegerField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = _money()
    currency = serializers.CharField()
    line_total = _money(max_digits=None)


class QuoteSerializer(Serializer[Any]):
    lines = QuoteLineSerializer(many=True)
    total = _money(max_digits=None)
    currency = serializers.CharField()


class ReservationLineSerializer(ModelSerializer[StockReservationLine]):
    product_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = StockReservationLine
        fields = ("product_id", "quantity")
        read_only_fields = fields


class ReservationSerializer(ModelSerializer[StockReservation]):
    lines = ReservationLineSerializer(many=True, read_only=True, source="line_list")

    class Meta:
        model = StockReservation
        fields = ("order_id", "status", "lines")
        read_only_fields = fields


# --- internal: the reconciliation auditor's pages -----------------------------


class StockBalanceSerializer(Serializer[StockBalance]):
    product_id = serializers.IntegerField()
    quantity = serializers.IntegerField(help_text="Available now.")
    ledger = serializers.IntegerField(help_text="Sum of the product's stock movements.")
    adjusted = serializers.IntegerField(help_text="Stock received: the sum of the stock counts.")
    held = serializers.IntegerField(help_text="Units held by RESERVED reservations.")
    committed = serializers.IntegerField(help_text="Units sold: COMMITTED reservations.")


class StockBalancePageSerializer(Serializer[Any]):
    results = StockBalanceSerializer(many=True)
    next_after = serializers.IntegerField(
        allow_null=True, help_text="`after` of the next page; null: last page."
    )


class ReservationAuditSerializer(ModelSerializer[StockReservation]):
    lines = ReservationLineSerializer(many=True, read_only=True, source="line_list")

    class Meta:
        model = StockReservation
        fields = ("id", "order_id", "status", "created_at", "lines")
        read_only_fields = fields


class ReservationAuditPageSerializer(Serializer[Any]):
    results = ReservationAuditSerializer(many=True)
    next_after = serializers.IntegerField(
        allow_null=True, help_text="`after` of the next page; null: last page."
    )
