"""The saga's calls to user_service, product_service and payment_service, each
turned into one of three outcomes the saga can act on:

- it worked: the function returns (with what upstream gave back);
- upstream said no for good (inactive user, no stock, no funds, a 4xx): the
  function raises `StepRefused` with the cancel reason;
- nobody could tell (timeout, unreachable, 5xx, a body that makes no sense):
  `UpstreamError`, which the saga retries.

A compensation that finds nothing to undo (404) leaves a tombstone upstream:
a charge or reservation of that order arriving later (one still in flight
when the saga gave up on it) is refused with 409 `order_compensated`. The
saga reads that as a refusal whose step took nothing, so it is not
compensated itself.

Every call here is idempotent upstream per order id (the contracts say so), so
repeating one after a crash or a lost answer has no second effect.

Reservations and charges asked by several of the worker's threads at once go
together, as one request to the operation's batch route, while one is on its
way (`comptoir.BatchedCalls`): each call still gets the answer its order alone
would have had and reads it as above; a call with nothing in flight goes out
alone, at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from comptoir import (
    BatchedCalls,
    ErrorCode,
    UpstreamError,
    UpstreamResponse,
    parse_error_body,
    response_json,
)

from .clients import payment_service_client, product_service_client, user_service_client
from .models import CancelReason, Customer, OrderSaga
from .product_quotes import RequestedLine

RESERVATIONS_PATH = "/internal/stock/reservations/"
RESERVATIONS_BATCH_PATH = "/internal/stock/reservations/batch/"
CHARGE_PATH = "/internal/payments/charge/"
CHARGE_BATCH_PATH = "/internal/payments/charge/batch/"
REFUND_PATH = "/internal/payments/refund/"
MAX_ERROR_LENGTH = 500
# 4xx answers that say "not now" rather than "no": retried like a 5xx.
TRANSIENT_4XX = frozenset({408, 425, 429})
# The code of payment_service's and product_service's 409 for an order already compensated.
ORDER_COMPENSATED = "order_compensated"


_RESERVATIONS = BatchedCalls(product_service_client, RESERVATIONS_PATH, RESERVATIONS_BATCH_PATH)
_CHARGES = BatchedCalls(payment_service_client, CHARGE_PATH, CHARGE_BATCH_PATH)


# product_service's refusals of a reservation for good (409 codes, `stock.rejected`
# reasons), as cancel reasons.
STOCK_REFUSALS = {
    CancelReason.INSUFFICIENT_STOCK.value: CancelReason.INSUFFICIENT_STOCK,
    CancelReason.PRICE_CHANGED.value: CancelReason.PRICE_CHANGED,
}


class StepRefused(Exception):
    """Upstream's final no: the saga fails with `reason` and compensates."""

    def __init__(self, reason: CancelReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def user_verify(*, user_id: int) -> Customer:
    """The user exists and is active (else `user_inactive`); their contact."""
    response = user_service_client().get(f"/internal/users/{user_id}/")
    if response.status_code == 404:
        raise StepRefused(CancelReason.USER_INACTIVE, f"user {user_id} does not exist")
    body = _expect(response, 200, "user_service")
    if body.get("is_active") is not True:
        raise StepRefused(CancelReason.USER_INACTIVE, f"user {user_id} is not active")
    email, full_name = str(body.get("email") or ""), str(body.get("full_name") or "")
    # Kept only if it fits where the saga stores it (an address is never cut short).
    if len(email) > _max_length("customer_email"):
        email = ""
    return Customer(email=email, full_name=full_name[: _max_length("customer_name")])


def _max_length(field: str) -> int:
    max_length = getattr(OrderSaga._meta.get_field(field), "max_length", None)
    assert isinstance(max_length, int)
    return max_length


def stock_reserve(*, order_id: int, lines: Iterable[RequestedLine], currency: str) -> str | None:
    """Holds every line or none, each at the unit price the order was placed at
    (a price changed since: `price_changed`); returns the reservation id when upstream names one."""
    response = _RESERVATIONS.post(
        {
            "order_id": str(order_id),
            "currency": currency,
            "lines": [
                {"product_id": line.product_id, "quantity": line.quantity}
                | ({} if line.unit_price is None else {"unit_price": str(line.unit_price)})
                for line in lines
            ],
        }
    )
    refusal = STOCK_REFUSALS.get(_error_code(response) or "") if response.status_code == 409 else None
    if refusal is not None:
        raise StepRefused(refusal, refusal.value)
    _refuse_compensated(response, "product_service")
    _refuse_4xx(response, CancelReason.SYSTEM_ERROR, "product_service refused the reservation")
    body = _expect(response, (200, 201), "product_service")
    reservation_id = body.get("reservation_id") or body.get("id")
    return str(reservation_id) if reservation_id is not None else None


def stock_release(*, order_id: int) -> None:
    """Gives the held stock back; nothing held (404) is as good as released (and
    product_service now refuses a reservation of the order)."""
    response = product_service_client().post(f"{RESERVATIONS_PATH}{order_id}/release/")
    if response.status_code == 404:
        return
    _refuse_4xx(response, CancelReason.SYSTEM_ERROR, "product_service refused to release the reservation")
    _expect(response, 200, "product_service")


def payment_charge(*, order_id: int, user_id: int, amount: Decimal, currency: str) -> str:
    """Takes the amount from the user's wallet; returns the payment id.

    The order id is the idempotency key: a repeat answers the same payment.
    """
    response = _CHARGES.post(
        {"order_id": str(order_id), "user_id": user_id, "amount": str(amount), "currency": currency},
        idempotency_key=str(order_id),
    )
    if response.status_code == 409 and _error_code(response) == CancelReason.INSUFFICIENT_FUNDS:
        raise StepRefused(CancelReason.INSUFFICIENT_FUNDS, "insufficient_funds")
    _refuse_compensated(response, "payment_service")
    _refuse_4xx(response, CancelReason.PAYMENT_FAILED, "payment_service refused the charge")
    body = _expect(response, (200, 201), "payment_service")
    payment_id = body.get("payment_id")
    if payment_id is None:
        raise _unusable("payment_service", "a charge without payment_id")
    return str(payment_id)


def payment_refund(*, order_id: int) -> None:
    """Gives the money back; nothing captured (404) is as good as refunded (and
    payment_service now refuses a charge of the order)."""
    response = payment_service_client().post(REFUND_PATH, json={"order_id": str(order_id)})
    if response.status_code == 404:
        return
    _refuse_4xx(response, CancelReason.SYSTEM_ERROR, "payment_service refused the refund")
    _expect(response, 200, "payment_service")


def _error_code(response: UpstreamResponse) -> str | None:
    error = parse_error_body(response)
    return error.code if error is not None else None


def _refuse_compensated(response: UpstreamResponse, service: str) -> None:
    """The order was compensated before this call landed: nothing was taken."""
    if response.status_code == 409 and _error_code(response) == ORDER_COMPENSATED:
        raise StepRefused(
            CancelReason.SYSTEM_ERROR,
            f"{service}: the order was compensated before this step ({ORDER_COMPENSATED})",
        )


def _refuse_4xx(response: UpstreamResponse, reason: CancelReason, what: str) -> None:
    if 400 <= response.status_code < 500 and response.status_code not in TRANSIENT_4XX:
        code = _error_code(response) or "no error code"
        raise StepRefused(reason, f"{what}: HTTP {response.status_code} {code}"[:MAX_ERROR_LENGTH])


def _expect(response: UpstreamResponse, statuses: int | tuple[int, ...], service: str) -> dict[str, Any]:
    wanted = (statuses,) if isinstance(statuses, int) else statuses
    if response.status_code not in wanted:
        raise UpstreamError(ErrorCode.UNAVAILABLE, f"{service} answered HTTP {response.status_code}")
    body = response_json(response)
    if not isinstance(body, dict):
        raise _unusable(service, "a body that is not a JSON object")
    return body


def _unusable(service: str, what: str) -> UpstreamError:
    return UpstreamError(ErrorCode.UNAVAILABLE, f"{service} answered with {what}", status_code=502)
