"""The mails email_service knows how to write, and what each needs to be written.

Each template is a folder of Django templates under
`mailer/templates/mailer/emails/<name>/`: `subject.txt`, `body.txt` and, when
the mail has one, `body.html`. A template lists the context keys it cannot do
without, so a caller who forgets one hears about it (400 `missing_context`)
instead of a customer receiving "Your order # is confirmed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string

from comptoir import ApplicationError

from .errors import MailerErrorCode


class MailTemplate(StrEnum):
    WELCOME = "welcome"
    ORDER_CONFIRMED = "order_confirmed"
    ORDER_CANCELLED = "order_cancelled"


REQUIRED_CONTEXT: dict[MailTemplate, tuple[str, ...]] = {
    MailTemplate.WELCOME: ("full_name",),
    MailTemplate.ORDER_CONFIRMED: ("order_id", "total", "currency"),
    MailTemplate.ORDER_CANCELLED: ("order_id", "reason"),
}

# What a cancel reason code (order_service's) means to a customer.
CANCEL_REASONS: dict[str, str] = {
    "insufficient_stock": "one or more items are no longer in stock",
    "price_changed": "the price of an item changed before it could be reserved (nothing was charged)",
    "insufficient_funds": "the payment could not be completed (insufficient funds)",
    "payment_failed": "the payment could not be completed",
    "user_inactive": "your account could not be verified",
    "user_not_found": "your account could not be verified",
    "customer_request": "you asked us to cancel it",
}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    body: str
    html_body: str


def mail_template_get(*, name: str) -> MailTemplate:
    try:
        return MailTemplate(name)
    except ValueError:
        raise ApplicationError(
            MailerErrorCode.UNKNOWN_TEMPLATE,
            f"No mail template named {name!r}.",
            details={"template": name, "known": [t.value for t in MailTemplate]},
        ) from None


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def mail_render(*, template: MailTemplate, context: Mapping[str, Any]) -> RenderedMail:
    """Subject, text body and optional HTML body of `template` for `context`."""
    missing = [key for key in REQUIRED_CONTEXT[template] if _is_missing(context.get(key))]
    if missing:
        raise ApplicationError(
            MailerErrorCode.MISSING_CONTEXT,
            f"The {template} mail needs these context keys: {', '.join(missing)}.",
            details={"template": template.value, "missing": missing},
        )
    values = dict(context)
    if template is MailTemplate.ORDER_CANCELLED:
        reason = str(values["reason"])
        values["reason_text"] = CANCEL_REASONS.get(reason, f"reason: {reason}")
    folder = f"mailer/emails/{template.value}"
    # One line however the template wraps it: a header cannot hold a newline.
    subject = " ".join(render_to_string(f"{folder}/subject.txt", values).split())
    body = render_to_string(f"{folder}/body.txt", values).strip() + "\n"
    try:
        html_body = get_template(f"{folder}/body.html").render(values)
    except TemplateDoesNotExist:
        html_body = ""
    return RenderedMail(subject=subject[:255], body=body, html_body=html_body)
