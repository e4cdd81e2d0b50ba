"""Prices for an order, from product_service's internal quote endpoint.

Each web process keeps the prices a quote gave for ORDER_PRICE_CACHE_S (see
`product_quote`); otherwise
`POST /internal/products/quote/ {lines: [{product_id, quantity}]}` answers
`{lines: [{product_id, name, quantity, unit_price, currency, line_total}], total,
currency}`, or a 4xx with the standard error body for an unknown or inactive
product. Those refusals reach our caller unchanged (status, code, details);
anything else that goes wrong upstream becomes a 5xx `UpstreamError`, never a
traceback. An answer that does not add up is refused too: the order's money
must be exactly what the quote says.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import caches

from comptoir import (
    ApplicationError,
    ErrorCode,
    UpstreamError,
    UpstreamResponse,
    parse_error_body,
    response_json,
)

from .clients import product_service_client
from .errors import OrderErrorCode

QUOTE_PATH = "/internal/products/quote/"
# product_service's own verdicts on the request (unknown product, inactive
# product...): the caller can act on them, so they pass through.
PASSED_THROUGH_STATUSES = frozenset({400, 404, 409, 422})


@dataclass(frozen=True)
class RequestedLine:
    product_id: int
    quantity: int
    # The price the order was placed at, sent with a reservation (None in a quote).
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class QuotedLine:
    product_id: int
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class Quote:
    lines: tuple[QuotedLine, ...]
    total: Decimal
    currency: str


_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Totals are wider than an order's columns on purpose: a too-large order is the
# caller's error (order_total_too_large), not a broken upstream.
_PRICE_DIGITS, _TOTAL_DIGITS = 12, 20


class _Malformed(Exception):
    """The quote's body is not the contract's shape."""


def _field(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise _Malformed
    return data[name]


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Malformed
    return value


def _amount(value: Any, max_digits: int) -> Decimal:
    """A non-negative decimal string (or number) with at most 2 decimal places."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Malformed
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise _Malformed from None
    if not amount.is_finite() or amount < 0:
        raise _Malformed
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -2 or len(amount.as_tuple().digits) > max_digits:
        raise _Malformed
    return amount


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise _Malformed
    return value


def _quoted_line(raw: Any) -> tuple[QuotedLine, str]:
    """One line of the quote and its currency."""
    if not isinstance(raw, dict):
        raise _Malformed
    line = QuotedLine(
        product_id=_positive_int(_field(raw, "product_id")),
        name=_name(_field(raw, "name")),
        quantity=_positive_int(_field(raw, "quantity")),
        unit_price=_amount(_field(raw, "unit_price"), _PRICE_DIGITS),
        line_total=_amount(_field(raw, "line_total"), _TOTAL_DIGITS),
    )
    return line, _currency(_field(raw, "currency"))


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise _Malformed
    return value


def product_quote(*, lines: Sequence[RequestedLine]) -> Quote:
    """Prices of `lines` (one per product), in the order they were asked: kept
    ones (ORDER_PRICE_CACHE_S) when every product has them, else a quote from
    product_service, whose prices are then kept. Kept prices may be up to
    ORDER_PRICE_CACHE_S old: the reservation checks them against the
    catalogue's (`upstream.stock_reserve`), so no order is confirmed at a price
    that changed; an unknown or inactive product is never kept (its refusal
    comes from the quote, every time)."""
    kept = _kept_quote(lines)
    if kept is not None:
        return kept
    quote = _asked_quote(lines)
    _keep(quote)
    return quote


_PRICES_KEY = "price:{}"


def _keep(quote: Quote) -> None:
    ttl = float(settings.ORDER_PRICE_CACHE_S)
    if ttl > 0:
        caches["prices"].set_many(
            {
                _PRICES_KEY.format(line.product_id): (line.name, line.unit_price, quote.currency)
                for line in quote.lines
            },
            timeout=ttl,
        )


def _kept_quote(lines: Sequence[RequestedLine]) -> Quote | None:
    """The quote from kept prices, or None if a product has none (or they differ in currency)."""
    if float(settings.ORDER_PRICE_CACHE_S) <= 0:
        return None
    keys = [_PRICES_KEY.format(line.product_id) for line in lines]
    kept = caches["prices"].get_many(keys)
    if len(kept) != len(keys):
        return None
    quoted = []
    currencies = set()
    for line, key in zip(lines, keys, strict=True):
        name, unit_price, currency = kept[key]
        currencies.add(currency)
        quoted.append(
            QuotedLine(
                product_id=line.product_id,
                name=name,
                quantity=line.quantity,
                unit_price=unit_price,
                line_total=unit_price * line.quantity,
            )
        )
    if len(currencies) != 1:
        return None
    total = sum((line.line_total for line in quoted), Decimal("0.00"))
    return Quote(lines=tuple(quoted), total=total, currency=currencies.pop())


def _asked_quote(lines: Sequence[RequestedLine]) -> Quote:
    response = product_service_client().post(
        QUOTE_PATH,
        json={"lines": [{"product_id": line.product_id, "quantity": line.quantity} for line in lines]},
        # A quote changes nothing upstream, so retrying it is safe: the key
        # opts this POST into the client's retries on connection errors and 502-504.
        idempotency_key=f"quote-{uuid.uuid4().hex}",
    )
    if response.status_code == 200:
        return _checked_quote(response_json(response), lines)
    if response.status_code in PASSED_THROUGH_STATUSES:
        raise _refusal(response)
    raise UpstreamError(
        ErrorCode.UNAVAILABLE,
        f"product_service could not quote the order (HTTP {response.status_code}).",
    )


def _refusal(response: UpstreamResponse) -> ApplicationError:
    error = parse_error_body(response)
    if error is not None and error.code:
        return ApplicationError(
            error.code,
            error.message or "product_service refused the order lines.",
            details=error.details or {},
            status_code=response.status_code,
        )
    return ApplicationError(
        OrderErrorCode.PRODUCT_QUOTE_REJECTED,
        "product_service refused the order lines.",
        status_code=response.status_code,
    )


def _invalid(reason: str) -> UpstreamError:
    return UpstreamError(
        OrderErrorCode.PRODUCT_QUOTE_INVALID,
        f"product_service answered with a quote that cannot be used: {reason}.",
        status_code=502,
    )


def _checked_quote(body: Any, requested: Sequence[RequestedLine]) -> Quote:
    """The quote, checked field by field (plain checks: this runs on every order)."""
    try:
        if not isinstance(body, dict) or not isinstance(_field(body, "lines"), list):
            raise _Malformed
        currency = _currency(_field(body, "currency"))
        quoted_total = _amount(_field(body, "total"), _TOTAL_DIGITS)
        parsed = [_quoted_line(raw) for raw in body["lines"]]
    except _Malformed:
        raise _invalid("malformed body") from None
    by_product: dict[int, QuotedLine] = {}
    for line, line_currency in parsed:
        if line_currency != currency:
            raise _invalid("lines in more than one currency")
        if line.line_total != line.unit_price * line.quantity:
            raise _invalid(f"line total of product {line.product_id} is not price x quantity")
        if line.product_id in by_product:
            raise _invalid(f"product {line.product_id} quoted twice")
        by_product[line.product_id] = line
    if set(by_product) != {line.product_id for line in requested}:
        raise _invalid("quoted products differ from the requested ones")
    ordered = tuple(by_product[line.product_id] for line in requested)
    if any(quoted.quantity != line.quantity for quoted, line in zip(ordered, requested, strict=True)):
        raise _invalid("quoted quantities differ from the requested ones")
    total = sum((line.line_total for line in ordered), Decimal("0.00"))
    if total != quoted_total:
        raise _invalid("total is not the sum of the lines")
    return Quote(lines=ordered, total=total, currency=currency)
