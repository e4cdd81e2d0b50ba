from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from mailer.models import SentEmail

from .smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/mailer/sentemail/"


def test_admin_lists_and_shows_the_mail_log(
    admin_client: Client, email_factory: Callable[..., SentEmail]
) -> None:
    email = email_factory(subject="Welcome to Comptoir, Zoé")
    listing = admin_client.get(CHANGELIST, {"status__exact": "QUEUED"})
    assert listing.status_code == 200
    assert "Welcome to Comptoir, Zoé" in listing.content.decode()
    detail = admin_client.get(f"{CHANGELIST}{email.pk}/change/")
    assert detail.status_code == 200
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_admin_cannot_edit_a_logged_mail(
    admin_client: Client, email_factory: Callable[..., SentEmail]
) -> None:
    email = email_factory()
    admin_client.post(f"{CHANGELIST}{email.pk}/change/", {"to": "evil@example.com", "status": "SENT"})
    stored = SentEmail.objects.get(pk=email.pk)
    assert (stored.to, stored.status) == (email.to, "QUEUED")


def test_admin_requeue_action_sends_failed_mails_again(
    admin_client: Client,
    email_factory: Callable[..., SentEmail],
    smtp_sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    failed = email_factory(status="FAILED", attempts=6, last_error="ConnectionRefusedError: down")
    sent = email_factory(status="SENT", attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST, {"action": "requeue", "_selected_action": [failed.pk, sent.pk]}
        )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("SENT", 7)
    assert SentEmail.objects.get(pk=sent.pk).attempts == 1
    assert [mail.rcpt_tos for mail in smtp_sink.mails()] == [[failed.to]]
