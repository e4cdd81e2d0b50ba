"""The real path end to end: events on the broker → the real `consume_events`
process (asking the user_service stub for addresses) → Redis → a real `celery
worker` process → the SMTP sink. One mail per (template, order), whatever the
deliveries."""

from __future__ import annotations

import time
import uuid

import pytest

from comptoir.events import InboxMessage
from comptoir.events.testing import ServiceProcesses, make_envelope, produce, wait_for
from mailer.models import SentEmail

from .conftest import WorkerProcess
from .smtp_sink import SmtpSink
from .user_service_stub import TOKEN_PATH, UserServiceStub

pytestmark = pytest.mark.django_db(transaction=True)


def test_consumer_process_mails_each_order_and_user_once(
    processes: ServiceProcesses,
    event_topics: dict[str, str],
    user_service: UserServiceStub,
    celery_worker_process: WorkerProcess,
    celery_test_queue: str,
    worker_smtp_sink: SmtpSink,
) -> None:
    already = len(worker_smtp_sink.mails())
    processes.start(
        "consume_events",
        "--group-id",
        f"email_service.test-{uuid.uuid4().hex[:8]}",
        USER_SERVICE_URL=user_service.url,
        SERVICE_TOKEN_URL=f"{user_service.url}{TOKEN_PATH}",
        EMAIL_TASK_QUEUE=celery_test_queue,
    )
    paid, refused = str(uuid.uuid4()), str(uuid.uuid4())
    confirmed = make_envelope(
        "order.confirmed", {"order_id": paid, "user_id": "2", "amount": "24.50", "currency": "EUR"}
    )
    produce(event_topics["order.confirmed"], confirmed)
    produce(event_topics["order.confirmed"], confirmed)  # delivered twice
    produce(
        event_topics["order.confirmed"],  # the same order's event from the other saga mode
        make_envelope("order.confirmed", confirmed.payload),
    )
    produce(
        event_topics["order.cancelled"],
        make_envelope(
            "order.cancelled", {"order_id": refused, "user_id": "3", "reason": "insufficient_stock"}
        ),
    )
    produce(
        event_topics["order.cancelled"],  # an unknown user: no mail
        make_envelope("order.cancelled", {"order_id": str(uuid.uuid4()), "user_id": "404", "reason": "x"}),
    )
    produce(
        event_topics["user.registered"],
        make_envelope(
            "user.registered",
            {"user_id": "77", "email": "grace@example.com", "display_name": "Grace"},
            producer="user_service",
        ),
    )

    wait_for(
        lambda: len(worker_smtp_sink.mails()) >= already + 3,
        timeout_s=60,
        what=f"three mails\n{processes.logs()}\n{celery_worker_process.log_tail()}",
    )
    wait_for(lambda: InboxMessage.objects.count() == 5, timeout_s=30, what="every event handled")
    time.sleep(1.0)  # room for a wrong extra mail to arrive

    mails = worker_smtp_sink.mails()[already:]
    assert sorted((m.rcpt_tos[0], m.subject) for m in mails) == sorted(
        [
            ("alice@comptoir.dev", f"Your Comptoir order #{paid} is confirmed"),
            ("bob@comptoir.dev", f"Your Comptoir order #{refused} was cancelled"),
            ("grace@example.com", "Welcome to Comptoir, Grace"),
        ]
    )
    assert sorted(SentEmail.objects.values_list("template", "object_id", "status")) == [
        ("order_cancelled", refused, "SENT"),
        ("order_confirmed", paid, "SENT"),
        ("welcome", "77", "SENT"),
    ]
