"""The queue path end to end: API → Redis → a real `celery worker` process → SMTP sink."""

from typing import Any

import pytest
from django.test import Client

from comptoir.testing import TokenFactory
from mailer.models import SentEmail

from .conftest import WorkerProcess
from .smtp_sink import SmtpSink

WORKER_DEADLINE_S = 60.0


@pytest.mark.django_db(transaction=True)
def test_real_worker_delivers_once_per_template_and_object(
    client: Client,
    tokens: TokenFactory,
    celery_through_broker: WorkerProcess,
    worker_smtp_sink: SmtpSink,
) -> None:
    headers = tokens.header(tokens.service("order_service", scopes=["emails:send"]))

    def post(body: dict[str, Any]) -> Any:
        return client.post("/internal/emails/", body, content_type="application/json", headers=headers)

    welcome = {
        "template": "welcome",
        "object_id": "2",
        "to": "alice@comptoir.dev",
        "context": {"full_name": "Alice"},
    }
    first = post(welcome)
    assert first.status_code == 202, first.json()
    mails = worker_smtp_sink.wait_for(1, timeout_s=WORKER_DEADLINE_S)
    assert [m.subject for m in mails] == ["Welcome to Comptoir, Alice"], celery_through_broker.log_tail()

    again = post(welcome)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]

    # The worker takes one task at a time, in order: once this later mail has
    # arrived, a second welcome mail would have too.
    cancelled = {
        "template": "order_cancelled",
        "object_id": "8",
        "to": "bob@comptoir.dev",
        "context": {"order_id": 8, "reason": "insufficient_stock"},
    }
    assert post(cancelled).status_code == 202
    mails = worker_smtp_sink.wait_for(2, timeout_s=WORKER_DEADLINE_S)
    assert [(m.rcpt_tos, m.subject) for m in mails] == [
        (["alice@comptoir.dev"], "Welcome to Comptoir, Alice"),
        (["bob@comptoir.dev"], "Your Comptoir order #8 was cancelled"),
    ], celery_through_broker.log_tail()
    assert "cancelled because one or more items are no longer in stock." in mails[1].text
    assert sorted(SentEmail.objects.values_list("template", "status", "attempts")) == [
        ("order_cancelled", "SENT", 1),
        ("welcome", "SENT", 1),
    ]
    assert celery_through_broker.process.poll() is None
