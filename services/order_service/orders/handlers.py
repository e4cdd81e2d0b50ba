"""Event handlers (run by `manage.py consume_events`): read the event, call
`orders.choreography`. Each runs in the consumer's transaction with its inbox
row, so a redelivered event has no second effect."""

from __future__ import annotations

from comptoir.events import Envelope, event_handler

from . import choreography
from .customers import customer_forget
from .models import SagaStep


@event_handler("stock.reserved")
def on_stock_reserved(event: Envelope) -> None:
    choreography.stock_reserved(
        order_id=event.payload["order_id"], reservation_id=event.payload["reservation_id"]
    )


@event_handler("stock.rejected")
def on_stock_rejected(event: Envelope) -> None:
    choreography.stock_rejected(order_id=event.payload["order_id"], reason=event.payload["reason"])


@event_handler("payment.succeeded")
def on_payment_succeeded(event: Envelope) -> None:
    choreography.payment_succeeded(order_id=event.payload["order_id"], payment_id=event.payload["payment_id"])


@event_handler("payment.failed")
def on_payment_failed(event: Envelope) -> None:
    choreography.payment_failed(order_id=event.payload["order_id"], reason=event.payload["reason"])


@event_handler("stock.released")
def on_stock_released(event: Envelope) -> None:
    choreography.compensation_done(order_id=event.payload["order_id"], step=SagaStep.RELEASE_STOCK)


@event_handler("payment.refunded")
def on_payment_refunded(event: Envelope) -> None:
    choreography.compensation_done(order_id=event.payload["order_id"], step=SagaStep.REFUND_PAYMENT)


@event_handler("user.deactivated")
def on_user_deactivated(event: Envelope) -> None:
    customer_forget(user_id=int(event.payload["user_id"]))
