"""Placing an order: priced by product_service, idempotent per key, and
handed to the saga of the mode in force (`SAGA_MODE`) in the same transaction.

The status machine (`order_transition`) lives in `orders.transitions`; the
sagas that move an order to CONFIRMED or CANCELLED in `orders.orchestration`
and `orders.choreography`.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from comptoir import ApplicationError, ConflictError

from . import choreography, orchestration
from .customers import customer_kept
from .errors import OrderErrorCode
from .models import (
    Customer,
    Order,
    OrderLine,
    OrderSaga,
    OrderStatus,
    OrderStatusChange,
    SagaMode,
    SagaStatus,
    SagaStep,
    SagaTimelineEntry,
    as_stored,
)
from .product_quotes import Quote, RequestedLine, product_quote
from .selectors import order_get_by_idempotency_key
from .transitions import SagaOpening
from .transitions import order_transition as order_transition

# Threads for the calls a request makes beside its own (carrying its context).
_side_calls = ThreadPoolExecutor(max_workers=8, thread_name_prefix="order-side-call")

MAX_LINES = 50
MAX_QUANTITY = 100
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# What Order.total (12 digits, 2 decimals) can hold.
MAX_ORDER_TOTAL = Decimal("9999999999.99")


@dataclass(frozen=True)
class PlacedOrderDetail:
    """A just-placed order as its placing transaction wrote it, with the fields
    of the detail answer (`OrderDetailSerializer`): the 202 needs no read back."""

    id: int
    status: str
    cancel_reason: str | None
    total: Decimal
    currency: str
    saga_mode: str
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLine]
    status_history: list[OrderStatusChange]
    timeline: list[SagaTimelineEntry]


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    # False when an earlier request with the same idempotency key placed it.
    created: bool
    # What the placing transaction wrote, when it is all known (None: read the order back).
    detail: PlacedOrderDetail | None = None


def order_create(
    *, user_id: int, lines: Sequence[RequestedLine], idempotency_key: str | None = None
) -> PlacedOrder:
    """Places a PENDING order priced by product_service and starts its saga.

    In choreography the user is verified too (a customer kept from a recent
    check, else user_service, beside the quote): an unknown or inactive user's
    order is placed already CANCELLED (`user_inactive`).
    Not one transaction from end to end on purpose: the quote is an HTTP call,
    and no row lock or transaction is held while it runs. A retried request
    (same user, same idempotency key) gets the order the first one placed; two
    racing first requests are settled by the unique constraint on
    (user_id, idempotency_key): the loser reads the winner's order.
    """
    _reject_duplicate_products(lines)
    fingerprint = None
    if idempotency_key is not None:
        fingerprint = _lines_fingerprint(lines)
        earlier = order_get_by_idempotency_key(user_id=user_id, idempotency_key=idempotency_key)
        if earlier is not None:
            return _replayed(earlier, fingerprint)
    saga_mode = SagaMode(settings.SAGA_MODE)
    # Choreography checks the user here: a customer kept from a recent check is
    # read in this thread; otherwise user_service is asked while the quote is
    # (two independent calls: the order waits for the slower one, not for both).
    kept = customer_kept(user_id=user_id) if saga_mode == SagaMode.CHOREOGRAPHY else None
    user_check = (
        _side_calls.submit(contextvars.copy_context().run, choreography.user_can_order, user_id=user_id)
        if saga_mode == SagaMode.CHOREOGRAPHY and kept is None
        else None
    )
    quote = product_quote(lines=lines)
    if quote.total > MAX_ORDER_TOTAL:
        raise ApplicationError(
            OrderErrorCode.ORDER_TOTAL_TOO_LARGE,
            f"An order's total cannot exceed {MAX_ORDER_TOTAL} {quote.currency}.",
            details={"total": str(quote.total), "currency": quote.currency},
        )
    # Choreography: the user's contact, None if the user cannot order.
    customer = user_check.result() if user_check is not None else kept
    try:
        order, detail = _order_insert(
            user_id=user_id,
            quote=quote,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            saga_mode=saga_mode,
            customer=customer,
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        earlier = order_get_by_idempotency_key(user_id=user_id, idempotency_key=idempotency_key)
        if earlier is None:
            raise
        return _replayed(earlier, fingerprint)
    return PlacedOrder(order=order, created=True, detail=detail)


@transaction.atomic
def _order_insert(
    *,
    user_id: int,
    quote: Quote,
    idempotency_key: str | None,
    fingerprint: str | None,
    saga_mode: SagaMode,
    customer: Customer | None,
) -> tuple[Order, PlacedOrderDetail | None]:
    """Writes the order, its lines, its first status and its saga; returns it with
    what was written, unless its saga already moved it on (a choreographed order
    whose user cannot order is cancelled here: read that one back)."""
    choreographed = saga_mode == SagaMode.CHOREOGRAPHY
    opening = choreography.saga_opening(customer=customer) if choreographed else orchestration.saga_opening()
    order, lines, placed, saga, timeline = _order_rows_insert(
        user_id=user_id,
        quote=quote,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        saga_mode=saga_mode,
        opening=opening,
    )
    if choreographed:
        choreography.saga_start(saga=saga, lines=lines)
    else:
        orchestration.saga_start(saga=saga)
    if saga.failure_reason is not None:
        return order, None
    detail = PlacedOrderDetail(
        id=order.pk,
        status=order.status,
        cancel_reason=order.cancel_reason,
        total=order.total,
        currency=order.currency,
        saga_mode=saga_mode,
        created_at=order.created_at,
        updated_at=order.updated_at,
        lines=lines,
        status_history=[placed],
        # The saga's first entries, if its start wrote any (choreography's user check).
        timeline=timeline,
    )
    return order, detail


def _quoted(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# The order's row, its lines, its first status, its saga and the saga's first
# timeline entry (when its start checked the user) in one statement (creates
# through the ORM were five, compiled again per order).
_PLACE = (
    f"WITH placed AS (INSERT INTO {_quoted(Order)} "  # noqa: S608 - the models' own tables
    "(user_id, status, cancel_reason, total, currency, idempotency_key, idempotency_fingerprint, "
    "saga_mode, created_at, updated_at) VALUES (%s, %s, NULL, %s, %s, %s, %s, %s, %s, %s) RETURNING id), "
    f"line AS (INSERT INTO {_quoted(OrderLine)} "
    "(order_id, product_id, product_name, quantity, unit_price, line_total) "
    "SELECT placed.id, line.product_id, line.product_name, line.quantity, line.unit_price, line.line_total "
    "FROM placed, unnest(%s::bigint[], %s::varchar[], %s::integer[], %s::numeric[], %s::numeric[]) "
    "WITH ORDINALITY AS line(product_id, product_name, quantity, unit_price, line_total, rank) "
    "ORDER BY line.rank RETURNING id, product_id), "
    f"history AS (INSERT INTO {_quoted(OrderStatusChange)} (order_id, from_status, to_status, reason, at) "
    "SELECT id, NULL, %s, NULL, %s FROM placed RETURNING id), "
    f"saga AS (INSERT INTO {_quoted(OrderSaga)} (order_id, status, current_step, attempts, failure_reason, "
    "compensation_plan, last_error, reservation_id, payment_id, customer_email, customer_name, "
    "stall_deadline, created_at, updated_at) "
    "SELECT id, %s, %s, 0, %s, '[]'::jsonb, '', NULL, NULL, %s, %s, %s, %s, %s FROM placed), "
    f"entry AS (INSERT INTO {_quoted(SagaTimelineEntry)} (order_id, step, status, error, at) "
    "SELECT id, %s, %s, %s, %s FROM placed WHERE %s::varchar IS NOT NULL) "
    "SELECT placed.id, history.id, (SELECT array_agg(line.id ORDER BY line.id) FROM line), "
    "(SELECT array_agg(line.product_id ORDER BY line.id) FROM line) FROM placed, history"
)


def _order_rows_insert(
    *,
    user_id: int,
    quote: Quote,
    idempotency_key: str | None,
    fingerprint: str | None,
    saga_mode: SagaMode,
    opening: SagaOpening,
) -> tuple[Order, list[OrderLine], OrderStatusChange, OrderSaga, list[SagaTimelineEntry]]:
    """Writes the PENDING order, its lines, its first status, its saga as `opening`
    says and the user check's timeline entry if any; returns them as written (a
    repeated idempotency key raises IntegrityError, as the ORM's insert did)."""
    now = timezone.now()
    saga, timeline = _opened(opening, now)
    user_check = timeline[0] if timeline else None
    with connection.cursor() as cursor:
        cursor.execute(
            _PLACE,
            [
                user_id,
                OrderStatus.PENDING,
                quote.total,
                quote.currency,
                idempotency_key,
                fingerprint,
                saga_mode,
                now,
                now,
                [line.product_id for line in quote.lines],
                [line.name for line in quote.lines],
                [line.quantity for line in quote.lines],
                [line.unit_price for line in quote.lines],
                [line.line_total for line in quote.lines],
                OrderStatus.PENDING,
                now,
                saga.status,
                saga.current_step,
                saga.failure_reason,
                saga.customer_email,
                saga.customer_name,
                saga.stall_deadline,
                saga.created_at,
                saga.updated_at,
                SagaStep.VERIFY_USER,
                user_check.status if user_check else None,
                user_check.error if user_check else None,
                now,
                user_check.status if user_check else None,
            ],
        )
        order_id, history_id, line_ids, product_ids = cursor.fetchone()
    order = as_stored(
        Order(
            id=order_id,
            user_id=user_id,
            status=OrderStatus.PENDING,
            total=quote.total,
            currency=quote.currency,
            idempotency_key=idempotency_key,
            idempotency_fingerprint=fingerprint,
            saga_mode=saga_mode,
            created_at=now,
            updated_at=now,
        )
    )
    # One line per product (duplicates are refused before): the ids by product.
    line_id = dict(zip(product_ids, line_ids, strict=True))
    lines = [
        as_stored(
            OrderLine(
                id=line_id[line.product_id],
                order=order,
                product_id=line.product_id,
                product_name=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.line_total,
            )
        )
        for line in quote.lines
    ]
    placed = as_stored(
        OrderStatusChange(id=history_id, order=order, from_status=None, to_status=OrderStatus.PENDING, at=now)
    )
    saga.order = order
    for entry in timeline:
        entry.order = order
    return order, lines, placed, as_stored(saga), timeline


def _opened(opening: SagaOpening, now: datetime) -> tuple[OrderSaga, list[SagaTimelineEntry]]:
    """The saga row `opening` describes and the user check's timeline entry if any,
    for the placing statement to write (their order set once it has an id; the
    entry, as `timeline_record` returns them, without an id of its own)."""
    customer = opening.customer
    saga = OrderSaga(
        status=SagaStatus.RUNNING,
        current_step=opening.current_step,
        attempts=0,
        failure_reason=opening.failure_reason,
        compensation_plan=[],
        last_error="",
        customer_email=customer.email if customer else "",
        customer_name=customer.full_name if customer else "",
        stall_deadline=opening.stall_deadline or now,
        created_at=now,
        updated_at=now,
    )
    if opening.user_check is None:
        return saga, []
    entry = SagaTimelineEntry(
        step=SagaStep.VERIFY_USER, status=opening.user_check, error=opening.user_check_error, at=now
    )
    return saga, [entry]


def _reject_duplicate_products(lines: Sequence[RequestedLine]) -> None:
    """One line per product: a repeated product id is refused, not merged.

    Merging would silently turn two lines the client sent into one it did not,
    and could push the merged quantity past the per-line limit; refusing says
    exactly what is wrong.
    """
    seen: set[int] = set()
    repeated: list[int] = []
    for line in lines:
        if line.product_id in seen and line.product_id not in repeated:
            repeated.append(line.product_id)
        seen.add(line.product_id)
    if repeated:
        raise ApplicationError(
            OrderErrorCode.DUPLICATE_PRODUCT,
            "Each product may appear on one line only; put the whole quantity on that line.",
            details={"product_ids": repeated},
        )


def _lines_fingerprint(lines: Sequence[RequestedLine]) -> str:
    """The same lines in any order give the same fingerprint."""
    canonical = json.dumps(sorted([line.product_id, line.quantity] for line in lines))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replayed(order: Order, fingerprint: str | None) -> PlacedOrder:
    if order.idempotency_fingerprint != fingerprint:
        raise ConflictError(
            OrderErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was already used for a different order.",
            details={"order_id": order.pk},
        )
    return PlacedOrder(order=order, created=False)
