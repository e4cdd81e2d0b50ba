"""Reads: the catalogue as the public and staff see it, quotes, reservations,
and the pages the reconciliation auditor reads (stock balances, reservations)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from comptoir import ApplicationError, NotFoundError

from .errors import CatalogErrorCode
from .models import (
    Category,
    Product,
    ReservationStatus,
    StockLevel,
    StockMovement,
    StockMovementKind,
    StockReservation,
    StockReservationLine,
)

# Every ordering ends on the primary key so that pages never overlap or skip a row.
PRODUCT_ORDERINGS: dict[str, tuple[str, ...]] = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "price": ("price", "id"),
    "-price": ("-price", "-id"),
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "-id"),
}
DEFAULT_PRODUCT_ORDERING = "name"


@dataclass(frozen=True)
class ProductFilters:
    category: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    search: str | None = None
    ordering: str = DEFAULT_PRODUCT_ORDERING


@dataclass(frozen=True)
class RequestedLine:
    """One line of an order as another service sends it: a product and a quantity,
    and for a reservation the unit price the order was placed at (None: not checked)."""

    product_id: int
    quantity: int
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class QuoteLine:
    product_id: int
    name: str
    quantity: int
    unit_price: Decimal
    currency: str
    line_total: Decimal


@dataclass(frozen=True)
class Quote:
    lines: list[QuoteLine]
    total: Decimal
    currency: str


def _products_with_stock() -> QuerySet[Product]:
    # `available` is the stock level; a product without a stock row has none.
    return Product.objects.select_related("category").annotate(
        available=Coalesce(F("stock__quantity"), Value(0))
    )


def product_list(*, filters: ProductFilters, include_inactive: bool = False) -> QuerySet[Product]:
    products = _products_with_stock()
    if not include_inactive:
        products = products.filter(is_active=True)
    if filters.category:
        products = products.filter(category__slug=filters.category)
    if filters.min_price is not None:
        products = products.filter(price__gte=filters.min_price)
    if filters.max_price is not None:
        products = products.filter(price__lte=filters.max_price)
    if filters.search:
        term = filters.search
        products = products.filter(
            Q(name__icontains=term) | Q(description__icontains=term) | Q(sku__icontains=term)
        )
    return products.order_by(*PRODUCT_ORDERINGS[filters.ordering])


def product_get(*, product_id: int, include_inactive: bool = False) -> Product:
    products = _products_with_stock()
    if not include_inactive:
        products = products.filter(is_active=True)
    try:
        return products.get(pk=product_id)
    except Product.DoesNotExist:
        raise NotFoundError(
            CatalogErrorCode.PRODUCT_NOT_FOUND,
            "No such product.",
            details={"product_ids": [product_id]},
        ) from None


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name", "id")


def category_get(*, category_id: int) -> Category:
    try:
        return Category.objects.get(pk=category_id)
    except Category.DoesNotExist:
        raise NotFoundError(CatalogErrorCode.CATEGORY_NOT_FOUND, "No such category.") from None


_PRODUCT_FIELDS = [field.attname for field in Product._meta.concrete_fields]
# Every order's quote and reservation reads its products: written out once instead
# of a queryset compiled again each time (no ORDER BY: the rows land in a dict).
_PRODUCTS_BY_ID = f"SELECT {', '.join(_PRODUCT_FIELDS)} FROM {Product._meta.db_table} WHERE id = ANY(%s)"  # noqa: S608


def _product(row: tuple[Any, ...]) -> Product:
    return Product.from_db(connection.alias, _PRODUCT_FIELDS, row)


def products_for_lines(*, lines: Sequence[RequestedLine]) -> dict[int, Product]:
    """The products the lines name, by id; unknown or inactive ones are refused."""
    wanted = sorted({line.product_id for line in lines})
    with connection.cursor() as cursor:
        cursor.execute(_PRODUCTS_BY_ID, [wanted])
        rows = cursor.fetchall()
    products = {product.pk: product for product in (_product(row) for row in rows)}
    unknown = [product_id for product_id in wanted if product_id not in products]
    if unknown:
        raise NotFoundError(
            CatalogErrorCode.PRODUCT_NOT_FOUND,
            "Some products do not exist.",
            details={"product_ids": unknown},
        )
    inactive = [product_id for product_id in wanted if not products[product_id].is_active]
    if inactive:
        raise ApplicationError(
            CatalogErrorCode.PRODUCT_INACTIVE,
            "Some products are no longer sold.",
            details={"product_ids": inactive},
        )
    return products


def quote_lines(*, lines: Sequence[RequestedLine]) -> Quote:
    """Prices an order from the catalogue; the caller's own prices never count."""
    products = products_for_lines(lines=lines)
    currencies = sorted({products[line.product_id].currency for line in lines})
    if len(currencies) != 1:
        raise ApplicationError(
            CatalogErrorCode.CURRENCY_MISMATCH,
            "The products are priced in different currencies.",
            details={"currencies": currencies},
        )
    quoted = []
    for line in lines:
        product = products[line.product_id]
        quoted.append(
            QuoteLine(
                product_id=product.pk,
                name=product.name,
                quantity=line.quantity,
                unit_price=product.price,
                currency=product.currency,
                line_total=product.price * line.quantity,
            )
        )
    total = sum((line.line_total for line in quoted), Decimal("0.00"))
    return Quote(lines=quoted, total=total, currency=currencies[0])


def reservation_get(*, order_id: str) -> StockReservation:
    try:
        return StockReservation.objects.prefetch_related("lines").get(order_id=order_id)
    except StockReservation.DoesNotExist:
        raise NotFoundError(
            CatalogErrorCode.RESERVATION_NOT_FOUND,
            "No stock reservation for this order.",
            details={"order_id": order_id},
        ) from None


# --- the reconciliation auditor's pages -------------------------------------


@dataclass(frozen=True)
class StockBalance:
    """What one product's stock should add up to, for the auditor to compare.

    `quantity` (available now) must equal `ledger` (the sum of its movements)
    and `adjusted - held - committed` (stock received minus the units that
    reservations hold or sold).
    """

    product_id: int
    quantity: int
    ledger: int
    adjusted: int
    held: int
    committed: int


# A page of products and each one's figures, aggregated in one pass over the page's
# movements and reservation lines (each read once for the page, not once per product:
# the cost follows the page's history, not its products times all of history).
_STOCK_BALANCE_PAGE = f"""
WITH page AS (
    SELECT id FROM {Product._meta.db_table} WHERE id > %(after)s ORDER BY id LIMIT %(limit)s
), movements AS (
    SELECT product_id, SUM(delta) AS ledger, SUM(delta) FILTER (WHERE kind = %(adjust)s) AS adjusted
    FROM {StockMovement._meta.db_table} WHERE product_id IN (SELECT id FROM page) GROUP BY product_id
), holds AS (
    SELECT line.product_id,
           SUM(line.quantity) FILTER (WHERE reservation.status = %(reserved)s) AS held,
           SUM(line.quantity) FILTER (WHERE reservation.status = %(committed)s) AS committed
    FROM {StockReservationLine._meta.db_table} line
    JOIN {StockReservation._meta.db_table} reservation ON reservation.id = line.reservation_id
    WHERE line.product_id IN (SELECT id FROM page) GROUP BY line.product_id
)
SELECT page.id, COALESCE(level.quantity, 0), COALESCE(movements.ledger, 0),
       COALESCE(movements.adjusted, 0), COALESCE(holds.held, 0), COALESCE(holds.committed, 0)
FROM page
LEFT JOIN {StockLevel._meta.db_table} level ON level.product_id = page.id
LEFT JOIN movements ON movements.product_id = page.id
LEFT JOIN holds ON holds.product_id = page.id
ORDER BY page.id
"""  # noqa: S608 - the tables' names are the models'


def stock_balance_page(*, after: int, limit: int) -> list[StockBalance]:
    """The stock balances of the products with an id above `after`, by id (keyset pages).

    One statement, so one snapshot: a reservation committing meanwhile cannot
    show its hold in one figure and not in another."""
    with connection.cursor() as cursor:
        cursor.execute(
            _STOCK_BALANCE_PAGE,
            {
                "after": after,
                "limit": limit,
                "adjust": StockMovementKind.ADJUST,
                "reserved": ReservationStatus.RESERVED,
                "committed": ReservationStatus.COMMITTED,
            },
        )
        rows = cursor.fetchall()
    return [
        StockBalance(
            product_id=pk,
            quantity=available,
            ledger=ledger,
            adjusted=adjusted,
            held=held,
            committed=committed,
        )
        for pk, available, ledger, adjusted, held, committed in rows
    ]


def reservation_audit_page(
    *,
    after: int,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
    order_ids: Sequence[str] = (),
) -> list[StockReservation]:
    """Reservations by id above `after` (keyset pages), created in [since, until),
    or only those of `order_ids`; with their lines."""
    reservations = StockReservation.objects.filter(pk__gt=after)
    if since is not None:
        reservations = reservations.filter(created_at__gte=since)
    if until is not None:
        reservations = reservations.filter(created_at__lt=until)
    if order_ids:
        reservations = reservations.filter(order_id__in=list(order_ids))
    page = list(reservations.order_by("pk")[:limit])
    # The page's lines in one read, handed to each reservation (`line_list`): a
    # prefetch builds a related manager and a queryset per reservation, which cost
    # more than the page's reads themselves.
    lines: dict[int, list[StockReservationLine]] = {reservation.pk: [] for reservation in page}
    for line in StockReservationLine.objects.filter(reservation_id__in=list(lines)).order_by(
        "reservation_id", "product_id"
    ):
        lines[line.reservation_id].append(line)
    for reservation in page:
        reservation.held_lines = lines[reservation.pk]
    return page
