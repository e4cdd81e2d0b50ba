"""payment_service's error codes and the failures its callers must tell apart."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from comptoir import ConflictError, NotFoundError


class PaymentErrorCode(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CURRENCY_MISMATCH = "currency_mismatch"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    PAYMENT_NOT_FOUND = "payment_not_found"
    ORDER_COMPENSATED = "order_compensated"


class PaymentDeclined(ConflictError):
    """The charge was refused (nothing was taken); `code` says why."""


class InsufficientFunds(PaymentDeclined):
    def __init__(self, *, details: dict[str, Any]) -> None:
        super().__init__(
            PaymentErrorCode.INSUFFICIENT_FUNDS,
            "The wallet's balance does not cover this amount; nothing was charged.",
            details=details,
        )


class CurrencyMismatch(PaymentDeclined):
    def __init__(self, *, details: dict[str, Any]) -> None:
        super().__init__(
            PaymentErrorCode.CURRENCY_MISMATCH,
            "The wallet holds another currency than the charge; nothing was charged.",
            details=details,
        )


class IdempotencyConflict(ConflictError):
    def __init__(self, *, details: dict[str, Any]) -> None:
        super().__init__(
            PaymentErrorCode.IDEMPOTENCY_CONFLICT,
            "This order was already charged with other parameters.",
            details=details,
        )


class PaymentNotFound(NotFoundError):
    def __init__(self, message: str = "No such payment.") -> None:
        super().__init__(PaymentErrorCode.PAYMENT_NOT_FOUND, message)


class OrderCompensated(ConflictError):
    """The order was refunded (compensated) before this charge: it may never capture."""

    def __init__(self, *, order_id: str) -> None:
        super().__init__(
            PaymentErrorCode.ORDER_COMPENSATED,
            "This order's payment was already compensated (refunded before any charge captured); "
            "nothing was charged.",
            details={"order_id": order_id},
        )
