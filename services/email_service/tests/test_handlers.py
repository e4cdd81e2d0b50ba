"""The event handlers: order.confirmed / order.cancelled / user.registered → one mail
each, to the address user_service has, through the real SMTP sink."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

import mailer.handlers  # noqa: F401 - registers the handlers
from comptoir import UpstreamError
from comptoir.events.testing import deliver, make_envelope
from mailer.models import SentEmail

from .smtp_sink import SmtpSink
from .user_service_stub import UserServiceStub

pytestmark = pytest.mark.django_db


def confirmed(order_id: str, user_id: str = "2", amount: str = "59.90") -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "amount": amount, "currency": "EUR"}


def cancelled(order_id: str, user_id: str = "3", reason: str = "insufficient_stock") -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "reason": reason}


@pytest.fixture
def order_id() -> str:
    return str(uuid.uuid4())


def test_order_confirmed_mails_the_customer_once(
    user_service: UserServiceStub,
    smtp_sink: SmtpSink,
    order_id: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    event = make_envelope("order.confirmed", confirmed(order_id))
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event)
        deliver(event)  # redelivered
        deliver(make_envelope("order.confirmed", event.payload))  # the other saga mode's event, same order

    email = SentEmail.objects.get()
    assert (email.template, email.object_id, email.to, email.status) == (
        "order_confirmed",
        order_id,
        "alice@comptoir.dev",
        SentEmail.Status.SENT,
    )
    assert email.context == {
        "order_id": order_id,
        "full_name": "Alice Martin",
        "total": "59.90",
        "amount": "59.90",
        "currency": "EUR",
    }
    (mail,) = smtp_sink.mails()
    assert mail.rcpt_tos == ["alice@comptoir.dev"]
    assert mail.subject == f"Your Comptoir order #{order_id} is confirmed"
    assert "Hello Alice Martin," in mail.text
    assert "Total: 59.90 EUR" in mail.text


def test_order_cancelled_mails_the_customer_with_the_reason(
    user_service: UserServiceStub,
    smtp_sink: SmtpSink,
    order_id: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    event = make_envelope("order.cancelled", cancelled(order_id, reason="insufficient_funds"))
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event)
        deliver(event)

    email = SentEmail.objects.get()
    assert (email.template, email.object_id, email.to) == ("order_cancelled", order_id, "bob@comptoir.dev")
    assert email.context == {"order_id": order_id, "full_name": "Bob Durand", "reason": "insufficient_funds"}
    (mail,) = smtp_sink.mails()
    assert mail.subject == f"Your Comptoir order #{order_id} was cancelled"
    assert "cancelled because the payment could not be completed (insufficient funds)." in mail.text


def test_an_order_gets_one_confirmation_and_at_most_one_cancellation(
    user_service: UserServiceStub, order_id: str
) -> None:
    deliver(make_envelope("order.confirmed", confirmed(order_id)))
    deliver(make_envelope("order.cancelled", cancelled(order_id, user_id="2")))
    deliver(make_envelope("order.cancelled", cancelled(order_id, user_id="2")))

    assert sorted(SentEmail.objects.values_list("template", "object_id")) == [
        ("order_cancelled", order_id),
        ("order_confirmed", order_id),
    ]


def test_a_cancellation_for_an_inactive_account_still_explains_it(
    user_service: UserServiceStub, order_id: str
) -> None:
    user_service.add(9, "gone@example.com", "Gone", is_active=False)

    deliver(make_envelope("order.cancelled", cancelled(order_id, user_id="9", reason="user_inactive")))

    email = SentEmail.objects.get()
    assert (email.to, email.template) == ("gone@example.com", "order_cancelled")
    assert "your account could not be verified" in email.body


@pytest.mark.parametrize("user_id", ["404", "not-a-number"])
def test_an_unknown_user_gets_no_mail_and_nothing_is_raised(
    user_service: UserServiceStub, order_id: str, user_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mailer.handlers"):
        deliver(make_envelope("order.confirmed", confirmed(order_id, user_id=user_id)))
        deliver(make_envelope("order.cancelled", cancelled(order_id, user_id=user_id)))

    assert SentEmail.objects.count() == 0
    assert [record.getMessage() for record in caplog.records] == [
        f"no order_confirmed mail for order {order_id}: user {user_id} is unknown",
        f"no order_cancelled mail for order {order_id}: user {user_id} is unknown",
    ]


def test_user_service_unavailable_raises_so_the_consumer_retries(
    user_service: UserServiceStub, order_id: str
) -> None:
    user_service.lookup_status = 503

    with pytest.raises(UpstreamError):
        deliver(make_envelope("order.confirmed", confirmed(order_id)))

    assert SentEmail.objects.count() == 0
    assert len(user_service.lookups) == 3  # the client's own retries first

    user_service.lookup_status = None
    deliver(make_envelope("order.confirmed", confirmed(order_id)))
    assert SentEmail.objects.get().to == "alice@comptoir.dev"


def test_an_event_carrying_the_customer_contact_is_mailed_without_asking_user_service(
    user_service: UserServiceStub,
    smtp_sink: SmtpSink,
    order_id: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # user_service is down: the contact the saga got from it travels in the event.
    user_service.lookup_status = 503
    carried = {"customer_email": "carol@comptoir.dev", "customer_name": "Carol Dupont"}
    with django_capture_on_commit_callbacks(execute=True):
        deliver(make_envelope("order.confirmed", {**confirmed(order_id), **carried}))
        deliver(make_envelope("order.cancelled", {**cancelled(order_id), **carried}))

    assert user_service.lookups == []
    assert [(e.template, e.to, e.context["full_name"]) for e in SentEmail.objects.order_by("pk")] == [
        ("order_confirmed", "carol@comptoir.dev", "Carol Dupont"),
        ("order_cancelled", "carol@comptoir.dev", "Carol Dupont"),
    ]
    assert sorted(mail.rcpt_tos[0] for mail in smtp_sink.mails()) == ["carol@comptoir.dev"] * 2


def test_user_registered_sends_the_welcome_mail_once(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks: Any
) -> None:
    event = make_envelope(
        "user.registered",
        {"user_id": "42", "email": "ada@example.com", "display_name": "Ada"},
        producer="user_service",
    )
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event)
        deliver(event)

    email = SentEmail.objects.get()
    assert (email.template, email.object_id, email.to, email.context) == (
        "welcome",
        "42",
        "ada@example.com",
        {"full_name": "Ada"},
    )
    (mail,) = smtp_sink.mails()
    assert mail.subject == "Welcome to Comptoir, Ada"


def test_a_user_without_a_display_name_is_welcomed_by_address() -> None:
    deliver(make_envelope("user.registered", {"user_id": "43", "email": "x@example.com", "display_name": ""}))
    deliver(make_envelope("user.registered", {"user_id": "44", "email": "y@example.com"}))

    assert list(SentEmail.objects.order_by("object_id").values_list("object_id", "subject")) == [
        ("43", "Welcome to Comptoir, x@example.com"),
        ("44", "Welcome to Comptoir, y@example.com"),
    ]
