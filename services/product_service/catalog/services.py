"""Writes: catalogue management by staff, and stock reservations per order.

Reservations never check then act. `reservation_hold` first claims the
order id (a unique row, inserted with ON CONFLICT DO NOTHING: a concurrent call
for the same order waits on it, then replays), then takes every line's units
with one conditional UPDATE per product (`quantity >= wanted`), in product-id
order (so two orders naming the same products in a different order cannot
deadlock): the row lock, the check and the decrement are one statement. If
any line is short, the whole transaction rolls back: all lines or none.

Every change of a stock quantity writes its `StockMovement` in the same
transaction (an adjustment, a hold, a release), so the movements of a product
always add up to its available quantity.

Tombstones: releasing an order that has no reservation (a saga compensating a
reservation whose answer it never got) claims the order id with a RELEASED
reservation without lines. A reservation still in flight then finds the claim
and is refused with `order_compensated` (409): stock never stays held for an
order that was already compensated. The claim is the same unique row a
reservation takes first, so a release and a reservation of one order are
serialised by the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, ProtectedError
from django.utils import timezone

from comptoir import ConflictError, NotFoundError

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
from .selectors import RequestedLine, products_for_lines

PRODUCT_EDITABLE_FIELDS = frozenset(
    {"sku", "name", "description", "price", "currency", "category", "is_active"}
)
CATEGORY_EDITABLE_FIELDS = frozenset({"name", "slug"})

_Locked = TypeVar("_Locked", Category, Product)


def _locked(model: type[_Locked], pk: int, code: CatalogErrorCode, message: str) -> _Locked:
    try:
        return model.objects.select_for_update().get(pk=pk)
    except model.DoesNotExist:
        raise NotFoundError(code, message) from None


# --- categories -----------------------------------------------------------


def _category_taken() -> ConflictError:
    return ConflictError(CatalogErrorCode.CATEGORY_TAKEN, "A category with this name or slug already exists.")


@transaction.atomic
def category_create(*, name: str, slug: str) -> Category:
    try:
        with transaction.atomic():
            return Category.objects.create(name=name, slug=slug)
    except IntegrityError:
        raise _category_taken() from None


@transaction.atomic
def category_update(*, category_id: int, changes: dict[str, Any]) -> Category:
    category = _locked(Category, category_id, CatalogErrorCode.CATEGORY_NOT_FOUND, "No such category.")
    for field, value in changes.items():
        if field not in CATEGORY_EDITABLE_FIELDS:
            raise ValueError(f"category field {field!r} is not editable")
        setattr(category, field, value)
    try:
        with transaction.atomic():
            category.save()
    except IntegrityError:
        raise _category_taken() from None
    return category


@transaction.atomic
def category_delete(*, category_id: int) -> None:
    category = _locked(Category, category_id, CatalogErrorCode.CATEGORY_NOT_FOUND, "No such category.")
    try:
        with transaction.atomic():
            category.delete()
    except ProtectedError:
        raise ConflictError(
            CatalogErrorCode.CATEGORY_IN_USE, "The category still has products; move or delete them first."
        ) from None


# --- products ----------------------------------------------------------------


def _sku_taken() -> ConflictError:
    return ConflictError(CatalogErrorCode.SKU_TAKEN, "A product with this SKU already exists.")


@transaction.atomic
def product_create(
    *,
    sku: str,
    name: str,
    price: Decimal,
    category: Category,
    description: str = "",
    currency: str = "EUR",
    is_active: bool = True,
) -> Product:
    """A new product, with an empty stock level (staff set it with `stock_set`)."""
    try:
        with transaction.atomic():
            product = Product.objects.create(
                sku=sku,
                name=name,
                description=description,
                price=price,
                currency=currency,
                category=category,
                is_active=is_active,
            )
    except IntegrityError:
        raise _sku_taken() from None
    StockLevel.objects.create(product=product, quantity=0)
    return product


@transaction.atomic
def product_update(*, product_id: int, changes: dict[str, Any]) -> Product:
    product = _locked(Product, product_id, CatalogErrorCode.PRODUCT_NOT_FOUND, "No such product.")
    for field, value in changes.items():
        if field not in PRODUCT_EDITABLE_FIELDS:
            raise ValueError(f"product field {field!r} is not editable")
        setattr(product, field, value)
    try:
        with transaction.atomic():
            product.save()
    except IntegrityError:
        raise _sku_taken() from None
    return product


@transaction.atomic
def product_delete(*, product_id: int) -> None:
    product = _locked(Product, product_id, CatalogErrorCode.PRODUCT_NOT_FOUND, "No such product.")
    try:
        with transaction.atomic():
            product.delete()
    except ProtectedError:
        raise ConflictError(
            CatalogErrorCode.PRODUCT_IN_USE,
            "The product appears in stock reservations; deactivate it instead.",
        ) from None


@transaction.atomic
def stock_set(*, product_id: int, quantity: int) -> StockLevel:
    """Sets the available quantity (a stock count by staff), whatever it was."""
    if quantity < 0:
        raise ValueError("stock quantity cannot be negative")
    _locked(Product, product_id, CatalogErrorCode.PRODUCT_NOT_FOUND, "No such product.")
    stock, _ = StockLevel.objects.select_for_update().get_or_create(product_id=product_id)
    delta = quantity - stock.quantity
    stock.quantity = quantity
    stock.save(update_fields=["quantity", "updated_at"])
    if delta:
        StockMovement.objects.create(product_id=product_id, kind=StockMovementKind.ADJUST, delta=delta)
    return stock


# --- reservations ----------------------------------------------------------------


def _quantities(lines: Sequence[RequestedLine]) -> dict[int, int]:
    quantities: dict[int, int] = {}
    for line in lines:
        if line.product_id in quantities:
            raise ValueError(f"product {line.product_id} appears twice")
        if line.quantity <= 0:
            raise ValueError("a line's quantity must be positive")
        quantities[line.product_id] = line.quantity
    return quantities


def _replay(reservation: StockReservation, quantities: dict[int, int]) -> StockReservation:
    """A repeated reserve for the same order: the first answer again, if it still holds."""
    held = {line.product_id: line.quantity for line in reservation.lines.all()}
    if not held:
        raise ConflictError(
            CatalogErrorCode.ORDER_COMPENSATED,
            "This order's stock was released before any was reserved (the order was compensated); "
            "nothing is reserved for it.",
            details={"order_id": reservation.order_id},
        )
    if held != quantities:
        raise ConflictError(
            CatalogErrorCode.RESERVATION_MISMATCH,
            "This order already has a reservation with different lines.",
            details={"order_id": reservation.order_id},
        )
    if reservation.status == ReservationStatus.RELEASED:
        raise ConflictError(
            CatalogErrorCode.RESERVATION_RELEASED,
            "This order's reservation was released; the stock is no longer held.",
            details={"order_id": reservation.order_id},
        )
    return reservation


def reservation_create(
    *, order_id: str, lines: Sequence[RequestedLine], currency: str | None = None
) -> StockReservation:
    """Holds stock for every line of an order, or for none; idempotent per order id
    (`reservation_hold` is its transaction)."""
    reservation, _created = reservation_hold(order_id=order_id, lines=lines, currency=currency)
    return reservation


@transaction.atomic
def reservation_hold(
    *, order_id: str, lines: Sequence[RequestedLine], currency: str | None = None
) -> tuple[StockReservation, bool]:
    """`reservation_create`, also telling whether this call made the reservation.

    False: an earlier call for the order did, and this one changed nothing (the
    saga's consumer publishes `stock.reserved` only for True). A refusal raises
    and, this function being atomic, rolls back only its own work.

    A line that names its `unit_price` (and a `currency` for the order) is held
    only at that price: if the catalogue's differs, nothing is held
    (`price_changed`), so an order is never confirmed at a price the catalogue
    no longer asks, whatever prices its placing read.
    """
    quantities = _quantities(lines)
    if not quantities:
        raise ValueError("a reservation needs at least one line")
    reservation = _claim_order_id(order_id)
    if reservation is None:
        existing = (
            StockReservation.objects.select_for_update().prefetch_related("lines").get(order_id=order_id)
        )
        return _replay(existing, quantities), False

    _check_prices(products_for_lines(lines=lines), lines, currency)
    product_ids = sorted(quantities)
    short = _take_stock(product_ids, quantities)
    if short:
        available = dict(
            StockLevel.objects.filter(product_id__in=short).values_list("product_id", "quantity")
        )
        raise ConflictError(
            CatalogErrorCode.INSUFFICIENT_STOCK,
            "Not enough stock for some products; nothing was reserved.",
            details={
                "unavailable": [
                    {
                        "product_id": product_id,
                        "requested": quantities[product_id],
                        "available": available.get(product_id, 0),
                    }
                    for product_id in short
                ]
            },
        )
    reservation.held_lines = _hold_lines(reservation, product_ids, quantities)
    return reservation, True


def _check_prices(products: dict[int, Product], lines: Sequence[RequestedLine], currency: str | None) -> None:
    changed = [
        {
            "product_id": line.product_id,
            "ordered_price": str(line.unit_price),
            "price": str(products[line.product_id].price),
            "currency": products[line.product_id].currency,
        }
        for line in lines
        if line.unit_price is not None
        and (
            products[line.product_id].price != line.unit_price
            or (currency is not None and products[line.product_id].currency != currency)
        )
    ]
    if changed:
        raise ConflictError(
            CatalogErrorCode.PRICE_CHANGED,
            "The price of some products changed since the order was placed; nothing was reserved.",
            details={"product_ids": [item["product_id"] for item in changed], "changed": changed},
        )


_CLAIM_ORDER_ID = (
    f"INSERT INTO {StockReservation._meta.db_table} (order_id, status, created_at, updated_at) "  # noqa: S608
    "VALUES (%s, %s, %s, %s) ON CONFLICT (order_id) DO NOTHING RETURNING id"
)


def _quoted(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


_TAKE_STOCK = (
    f"UPDATE {_quoted(StockLevel)} SET quantity = quantity - %s "  # noqa: S608 - the model's own table
    "WHERE product_id = %s AND quantity >= %s"
)
_HOLD_LINES = (
    f"WITH held AS (INSERT INTO {_quoted(StockReservationLine)} "  # noqa: S608 - the models' own tables
    "(reservation_id, product_id, quantity) SELECT %s, held.product_id, held.quantity "
    "FROM unnest(%s::bigint[], %s::integer[]) WITH ORDINALITY AS held(product_id, quantity, rank) "
    "ORDER BY held.rank RETURNING id, product_id, quantity), "
    f"moved AS (INSERT INTO {_quoted(StockMovement)} "
    "(product_id, kind, delta, reservation_id, created_at) "
    "SELECT product_id, %s, -quantity, %s, %s FROM held) "
    "SELECT id, product_id, quantity FROM held"
)


def _take_stock(product_ids: list[int], quantities: dict[int, int]) -> list[int]:
    """Takes each product's quantity off its stock, one product after the other in
    the order given (every reservation locks stock rows in id order: no deadlock
    between two of them); returns the products that had too little (their stock
    untouched, the others' taken: the caller's transaction must not commit then)."""
    short = []
    with connection.cursor() as cursor:
        for product_id in product_ids:
            cursor.execute(_TAKE_STOCK, [quantities[product_id], product_id, quantities[product_id]])
            if cursor.rowcount != 1:
                short.append(product_id)
    return short


def _hold_lines(
    reservation: StockReservation, product_ids: list[int], quantities: dict[int, int]
) -> list[StockReservationLine]:
    """The reservation's lines and their HOLD movements, in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            _HOLD_LINES,
            [
                reservation.pk,
                product_ids,
                [quantities[product_id] for product_id in product_ids],
                StockMovementKind.HOLD,
                reservation.pk,
                timezone.now(),
            ],
        )
        rows = cursor.fetchall()
    lines = []
    for line_id, product_id, quantity in sorted(rows, key=lambda row: row[1]):
        line = StockReservationLine(
            id=line_id, reservation=reservation, product_id=product_id, quantity=quantity
        )
        line._state.adding, line._state.db = False, connection.alias
        lines.append(line)
    return lines


def _claim_order_id(order_id: str) -> StockReservation | None:
    """A RESERVED reservation for the order, inserted now; None when the order
    id is already claimed (a reservation or a tombstone, committed: a concurrent
    claim waits for the first one's transaction to end). One statement, where a
    savepoint around the model's insert takes three."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_ORDER_ID, [order_id, ReservationStatus.RESERVED, now, now])
        row = cursor.fetchone()
    if row is None:
        return None
    reservation = StockReservation(
        id=row[0], order_id=order_id, status=ReservationStatus.RESERVED, created_at=now, updated_at=now
    )
    reservation._state.adding = False
    return reservation


def _locked_reservation(order_id: str) -> StockReservation:
    try:
        return StockReservation.objects.select_for_update().get(order_id=order_id)
    except StockReservation.DoesNotExist:
        raise NotFoundError(
            CatalogErrorCode.RESERVATION_NOT_FOUND,
            "No stock reservation for this order.",
            details={"order_id": order_id},
        ) from None


def _tombstone(order_id: str) -> StockReservation | None:
    """The order's reservation, locked, after claiming the order id with a
    tombstone if it had none; None when this call (or an earlier one) left the
    tombstone: nothing was ever held for the order."""
    reservation = StockReservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        try:
            with transaction.atomic():
                StockReservation.objects.create(order_id=order_id, status=ReservationStatus.RELEASED)
        except IntegrityError:
            # A reservation (or another release) claimed it first and has committed.
            reservation = StockReservation.objects.select_for_update().get(order_id=order_id)
        else:
            return None
    if reservation.status == ReservationStatus.RELEASED and not reservation.lines.exists():
        return None
    return reservation


def reservation_release(*, order_id: str) -> StockReservation:
    """Gives the held stock back (a cancelled order); idempotent, refused once committed.

    An order with nothing reserved is `reservation_not_found` (as good as
    released for the saga), and a tombstone refuses its reservation from now on.
    """
    reservation = _release_or_tombstone(order_id=order_id)
    if reservation is None:
        raise NotFoundError(
            CatalogErrorCode.RESERVATION_NOT_FOUND,
            "No stock reservation for this order; none can be made for it any more.",
            details={"order_id": order_id},
        )
    return reservation


@transaction.atomic
def _release_or_tombstone(*, order_id: str) -> StockReservation | None:
    reservation = _tombstone(order_id)
    if reservation is None or reservation.status == ReservationStatus.RELEASED:
        return reservation
    if reservation.status == ReservationStatus.COMMITTED:
        raise ConflictError(
            CatalogErrorCode.RESERVATION_COMMITTED,
            "This order's reservation is committed; its stock can no longer be released.",
            details={"order_id": order_id},
        )
    _release(reservation)
    return reservation


def _release(reservation: StockReservation) -> None:
    """Puts a locked RESERVED reservation's units back on sale."""
    for line in reservation.lines.order_by("product_id"):
        StockLevel.objects.filter(product_id=line.product_id).update(quantity=F("quantity") + line.quantity)
        StockMovement.objects.create(
            product_id=line.product_id,
            kind=StockMovementKind.RELEASE,
            delta=line.quantity,
            reservation=reservation,
        )
    reservation.status = ReservationStatus.RELEASED
    reservation.save(update_fields=["status", "updated_at"])


# No savepoint: the consumer calls it in its batch's transaction without
# catching (an error fails the handler, and the consumer replays the batch event
# by event). There a savepoint of its own (two statements) would buy nothing;
# called alone it is its own transaction, as any atomic function.
@transaction.atomic(savepoint=False)
def reservation_release_if_held(*, order_id: str) -> StockReservation | None:
    """Releases the order's reservation if it still holds stock; returns it only then.

    None when there is nothing to give back: no reservation (stock was
    refused, or never asked for: a tombstone then refuses a reservation still
    on its way), already released (e.g. by the orchestrator over HTTP), or
    committed (a confirmed order's stock is sold).
    """
    reservation = _tombstone(order_id)
    if reservation is None or reservation.status != ReservationStatus.RESERVED:
        return None
    _release(reservation)
    return reservation


@transaction.atomic
def reservation_commit(*, order_id: str) -> StockReservation:
    """Makes the reservation final (a confirmed order); idempotent, refused once released."""
    reservation = _locked_reservation(order_id)
    if reservation.status == ReservationStatus.COMMITTED:
        return reservation
    if reservation.status == ReservationStatus.RELEASED:
        raise ConflictError(
            CatalogErrorCode.RESERVATION_RELEASED,
            "This order's reservation was released; it cannot be committed.",
            details={"order_id": order_id},
        )
    _commit(reservation)
    return reservation


def _commit(reservation: StockReservation) -> None:
    reservation.status = ReservationStatus.COMMITTED
    reservation.save(update_fields=["status", "updated_at"])


_COMMIT_IF_HELD = (
    f"UPDATE {StockReservation._meta.db_table} SET status = %s, updated_at = %s "  # noqa: S608
    "WHERE order_id = %s AND status = %s RETURNING id"
)


def reservation_commit_if_held(*, order_id: str) -> int | None:
    """Commits the order's reservation if it is still only held; returns its id only then.

    None when there is nothing to commit: no reservation, already committed
    (e.g. by the orchestrator over HTTP), or released. One conditional UPDATE
    (it takes the row lock and re-checks the status under it).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _COMMIT_IF_HELD,
            [ReservationStatus.COMMITTED, timezone.now(), order_id, ReservationStatus.RESERVED],
        )
        row = cursor.fetchone()
    return int(row[0]) if row is not None else None
