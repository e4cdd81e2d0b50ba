"""The Celery task, run in-process (eager): retries, backoff, final state."""

from collections.abc import Iterator
from typing import Any

import pytest

from config.celery import app as celery_app
from mailer.models import SentEmail
from mailer.services import email_request
from mailer.tasks import send_email

from .smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_email() -> SentEmail:
    email, _ = email_request(
        template="order_cancelled",
        object_id="17",
        to="bob@comptoir.dev",
        context={"order_id": 17, "reason": "insufficient_funds", "full_name": "Bob"},
    )
    return email


def test_task_is_acked_late_and_retries_smtp_errors_with_backoff() -> None:
    assert send_email.name == "mailer.send_email"
    assert send_email.acks_late is True
    assert send_email.max_retries == 5
    # Set by the decorator; celery-types does not declare them.
    assert getattr(send_email, "retry_backoff", None) == 5
    assert getattr(send_email, "retry_jitter", None) is True
    assert OSError in getattr(send_email, "autoretry_for", ())


def test_task_sends_the_mail(queued_email: SentEmail, smtp_sink: SmtpSink) -> None:
    result = send_email.apply(args=(queued_email.pk,))
    assert result.get() == "SENT"
    [mail] = smtp_sink.mails()
    assert mail.rcpt_tos == ["bob@comptoir.dev"]
    assert mail.subject == "Your Comptoir order #17 was cancelled"
    assert "cancelled because the payment could not be completed (insufficient funds)." in mail.text
    stored = SentEmail.objects.get()
    assert (stored.status, stored.attempts) == ("SENT", 1)


def test_task_twice_sends_one_mail(queued_email: SentEmail, smtp_sink: SmtpSink) -> None:
    assert send_email.apply(args=(queued_email.pk,)).get() == "SENT"
    assert send_email.apply(args=(queued_email.pk,)).get() == "SENT"
    assert len(smtp_sink.mails()) == 1
    assert SentEmail.objects.get().attempts == 1


@pytest.fixture
def eager_retries() -> Iterator[None]:
    """Eager mode replays a retry in-process only when it does not propagate the `Retry`."""
    celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = False
    try:
        yield
    finally:
        celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = True


@pytest.mark.usefixtures("eager_retries")
def test_smtp_down_retries_then_fails_without_raising(queued_email: SentEmail, smtp_sink: SmtpSink) -> None:
    smtp_sink.stop()
    result = send_email.apply(args=(queued_email.pk,))
    # Eager retries run at once; the last attempt records FAILED and returns.
    assert result.successful()
    assert result.get() == "FAILED"
    stored = SentEmail.objects.get()
    assert (stored.status, stored.attempts, stored.sent_at) == ("FAILED", 6, None)
    assert stored.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert smtp_sink.mails() == []


def test_task_for_a_missing_row_does_nothing(smtp_sink: SmtpSink) -> None:
    assert send_email.apply(args=(987654321,)).get() == "MISSING"
    assert smtp_sink.mails() == []
    assert SentEmail.objects.count() == 0


def test_request_delivers_after_commit(smtp_sink: SmtpSink, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        email, _ = email_request(
            template="welcome", object_id="3", to="bob@comptoir.dev", context={"full_name": "Bob"}
        )
    assert [mail.subject for mail in smtp_sink.mails()] == ["Welcome to Comptoir, Bob"]
    assert SentEmail.objects.get(pk=email.pk).status == "SENT"
