"""The events payment_service publishes, shaped as `contracts/events/` says.

Each function writes to the outbox inside the caller's transaction (the
consumer's, with its inbox row), so the event exists exactly when the change
commits. Ids travel as strings, money as decimal strings; the aggregate is the
order the payment belongs to.
"""

from __future__ import annotations

from typing import Any

from comptoir.events import Envelope, publish_event

from .models import LedgerEntry, Payment


def publish_payment_succeeded(*, payment: Payment) -> Envelope:
    """The order's amount is captured: the saga confirms the order."""
    return publish_event(
        "payment.succeeded",
        aggregate_id=payment.order_id,
        payload={**_charge_payload(payment), "payment_id": str(payment.pk)},
    )


def publish_payment_failed(
    *, order_id: str, user_id: str, amount: str, currency: str, reason: str
) -> Envelope:
    """The charge is declined (`reason`: the decline code), or could not be tried at all."""
    return publish_event(
        "payment.failed",
        aggregate_id=order_id,
        payload={
            "order_id": order_id,
            "user_id": user_id,
            "amount": amount,
            "currency": currency,
            "reason": reason,
        },
    )


def publish_payment_refunded(*, payment: Payment, refund: LedgerEntry, reason: str) -> Envelope:
    """The captured charge is paid back; `reason` is the order's cancel reason."""
    return publish_event(
        "payment.refunded",
        aggregate_id=payment.order_id,
        payload={
            **_charge_payload(payment),
            "payment_id": str(payment.pk),
            "refund_id": str(refund.pk),
            "reason": reason,
        },
    )


def _charge_payload(payment: Payment) -> dict[str, Any]:
    return {
        "order_id": payment.order_id,
        "user_id": str(payment.user_id),
        "amount": str(payment.amount),
        "currency": payment.currency,
    }
