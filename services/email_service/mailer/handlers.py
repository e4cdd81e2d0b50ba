"""Event entry points, run by `manage.py consume_events`: the mails the platform's
events call for.

order.confirmed → `order_confirmed`, order.cancelled → `order_cancelled` (both
to the customer's address: the one the event carries, which order_service got
from user_service when its saga verified the user, else the one user_service
has now for the order's user), user.registered →
`welcome`. Each goes through `email_request`, whose (template, object id)
uniqueness makes one mail per order or user however often, and in whichever
saga mode, the event arrives. A user user_service does not know gets no mail
(logged); user_service being unreachable raises, so the consumer retries.
"""

from __future__ import annotations

import logging
from typing import Any

from comptoir.events import Envelope, event_handler

from .mail_templates import MailTemplate
from .recipients import Recipient, recipient_get
from .services import email_request

logger = logging.getLogger(__name__)


def _mail_order_customer(*, template: MailTemplate, event: Envelope, context: dict[str, Any]) -> None:
    order_id = str(event.payload["order_id"])
    user_id = str(event.payload["user_id"])
    recipient = _carried_recipient(event) or recipient_get(user_id=user_id)
    if recipient is None:
        logger.warning("no %s mail for order %s: user %s is unknown", template.value, order_id, user_id)
        return
    email, created = email_request(
        template=template.value,
        object_id=order_id,
        to=recipient.email,
        context={"order_id": order_id, "full_name": recipient.full_name, **context},
    )
    outcome = "queued" if created else "already requested"
    logger.info("%s mail for order %s %s (mail %s)", template.value, order_id, outcome, email.pk)


def _carried_recipient(event: Envelope) -> Recipient | None:
    """The customer's contact carried by the event (order_service's saga read it
    from user_service moments ago); None when the event carries none."""
    email = event.payload.get("customer_email")
    if not email:
        return None
    return Recipient(
        user_id=str(event.payload["user_id"]),
        email=str(email),
        full_name=str(event.payload.get("customer_name") or ""),
        is_active=True,
    )


@event_handler("order.confirmed")
def mail_order_confirmed(event: Envelope) -> None:
    amount = str(event.payload["amount"])
    _mail_order_customer(
        template=MailTemplate.ORDER_CONFIRMED,
        event=event,
        context={"total": amount, "amount": amount, "currency": str(event.payload["currency"])},
    )


@event_handler("order.cancelled")
def mail_order_cancelled(event: Envelope) -> None:
    _mail_order_customer(
        template=MailTemplate.ORDER_CANCELLED,
        event=event,
        context={"reason": str(event.payload["reason"])},
    )


@event_handler("user.registered")
def mail_welcome(event: Envelope) -> None:
    user_id = str(event.payload["user_id"])
    email = str(event.payload["email"])
    # The template greets by name; an account without one is greeted by its address.
    name = str(event.payload.get("display_name") or "").strip() or email
    email_request(
        template=MailTemplate.WELCOME.value, object_id=user_id, to=email, context={"full_name": name}
    )
