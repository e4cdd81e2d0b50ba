"""Event entry points of the order saga (choreography), run by `manage.py consume_events`.

Each handler reads its event, calls a service function and publishes the
answer through the outbox, all in the consumer's transaction (with the inbox
row): a redelivered event changes nothing and publishes nothing twice. The
service functions also say whether the call changed anything, so a repeat
under another event id, or `order.cancelled` for an order the orchestrator
already refunded over HTTP, is a no-op too.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from comptoir.events import Envelope, event_handler

from .errors import OrderCompensated, PaymentErrorCode
from .publishing import (
    publish_payment_failed,
    publish_payment_refunded,
    publish_payment_succeeded,
)
from .services import payment_charge_once, payment_refund_if_captured

logger = logging.getLogger(__name__)


@event_handler("stock.reserved")
def charge_for_reserved_stock(event: Envelope) -> None:
    """stock.reserved → charge the order's amount → payment.succeeded, or payment.failed."""
    reserved = event.payload
    order_id = str(reserved["order_id"])
    if not all(reserved.get(key) for key in ("user_id", "amount", "currency")):
        # Version 1 makes them optional; product_service always writes them.
        logger.error("stock.reserved for order %s carries no user, amount or currency: not charged", order_id)
        return
    user_id = str(reserved["user_id"])
    if not user_id.isdecimal():
        # No wallet can belong to such a user: the same answer as an empty wallet.
        publish_payment_failed(
            order_id=order_id,
            user_id=user_id,
            amount=str(reserved["amount"]),
            currency=str(reserved["currency"]),
            reason=PaymentErrorCode.INSUFFICIENT_FUNDS.value,
        )
        return
    try:
        attempt = payment_charge_once(
            order_id=order_id,
            user_id=int(user_id),
            amount=Decimal(str(reserved["amount"])),
            currency=str(reserved["currency"]),
        )
    except OrderCompensated:
        # order.cancelled came first (e.g. the choreography deadline) and left a
        # tombstone: the order is over, nothing is taken and nobody waits for an answer.
        logger.warning("stock.reserved for order %s after its cancellation: not charged", order_id)
        return
    if not attempt.attempted:
        logger.info("stock.reserved for order %s: already charged (%s)", order_id, attempt.payment.status)
        return
    if attempt.declined is not None:
        logger.info("charge declined for order %s: %s", order_id, attempt.declined.code)
        payment = attempt.payment
        publish_payment_failed(
            order_id=payment.order_id,
            user_id=str(payment.user_id),
            amount=str(payment.amount),
            currency=payment.currency,
            reason=attempt.declined.code,
        )
        return
    publish_payment_succeeded(payment=attempt.payment)


@event_handler("order.cancelled")
def refund_cancelled_order(event: Envelope) -> None:
    """order.cancelled → pay a captured charge back → payment.refunded; nothing captured → nothing."""
    order_id = str(event.payload["order_id"])
    refund = payment_refund_if_captured(order_id=order_id)
    if refund is None:
        logger.info("order.cancelled for order %s: nothing captured to refund", order_id)
        return
    publish_payment_refunded(payment=refund.payment, refund=refund.entry, reason=str(event.payload["reason"]))
