"""The queue path end to end: API → Redis → a real `celery worker` process → SMTP sink."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from comptoir.testing import TokenFactory
from mailer.models import SentEmail
from mailer.services import email_requeue_stalled

from .conftest import SERVICE_DIR, WorkerProcess, start_worker, stop_worker
from .smtp_sink import SmtpSink

WORKER_DEADLINE_S = 60.0


def _settled(*email_ids: int, timeout_s: float = WORKER_DEADLINE_S) -> list[tuple[str, str, int]]:
    """(template, status, attempts) of the mails once none is QUEUED: the worker
    records the outcome when its SMTP session ends, after the sink has the mail."""
    deadline = time.monotonic() + timeout_s
    rows = SentEmail.objects.filter(pk__in=email_ids).order_by("template")
    while rows.filter(status=SentEmail.Status.QUEUED).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(rows.values_list("template", "status", "attempts"))


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
    assert _settled(*SentEmail.objects.values_list("pk", flat=True)) == [
        ("order_cancelled", "SENT", 1),
        ("welcome", "SENT", 1),
    ]
    assert celery_through_broker.process.poll() is None


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _queue_with_the_broker_down(to: str, name: str, object_id: str) -> SentEmail:
    """Another process asks for a mail (as the consumer does) while its Redis is
    unreachable: the row commits, the enqueue after commit fails."""
    db = connection.settings_dict
    asking = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from mailer.services import email_request; "
            f"email_request(template='welcome', object_id='{object_id}', to='{to}', "
            f"context={{'full_name': '{name}'}})",
        ],
        cwd=SERVICE_DIR,
        env={
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{_closed_port()}/0",
            "EMAIL_REQUEUE_AFTER_S": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert asking.returncode == 0, asking.stderr[-3000:]
    assert "could not enqueue a mail's delivery" in asking.stdout + asking.stderr
    email = SentEmail.objects.get(object_id=object_id)
    assert (email.template, email.status, email.attempts) == ("welcome", "QUEUED", 0)
    return email


@pytest.mark.django_db(transaction=True)
def test_a_mail_whose_enqueue_failed_is_sent_once_by_the_sweep(
    celery_through_broker: WorkerProcess, worker_smtp_sink: SmtpSink
) -> None:
    email = _queue_with_the_broker_down("carol@comptoir.dev", "Carol", "5")

    # The sweep, with Redis back: the worker sends it, once.
    before = len(worker_smtp_sink.mails())
    assert email_requeue_stalled() == [email.pk]
    mails = worker_smtp_sink.wait_for(before + 1, timeout_s=WORKER_DEADLINE_S)[before:]
    assert [(m.rcpt_tos, m.subject) for m in mails] == [
        (["carol@comptoir.dev"], "Welcome to Comptoir, Carol")
    ], celery_through_broker.log_tail()
    assert _settled(email.pk) == [("welcome", "SENT", 1)]
    assert email_requeue_stalled() == []
    assert len(worker_smtp_sink.mails()) == before + 1


@pytest.mark.django_db(transaction=True)
def test_the_worker_sweeps_by_itself_and_sends_a_lost_mail_once(
    celery_test_queue: str, worker_smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """No beat process: the worker's own sweep (EMAIL_SWEEP_INTERVAL_S) finds the mail."""
    email = _queue_with_the_broker_down("dave@comptoir.dev", "Dave", "6")
    before = len(worker_smtp_sink.mails())
    log = tmp_path / "sweeping-worker.log"
    worker = start_worker(celery_test_queue, worker_smtp_sink, log, EMAIL_SWEEP_INTERVAL_S="1")
    try:
        mails = worker_smtp_sink.wait_for(before + 1, timeout_s=WORKER_DEADLINE_S)[before:]
        assert [(m.rcpt_tos, m.subject) for m in mails] == [
            (["dave@comptoir.dev"], "Welcome to Comptoir, Dave")
        ], log.read_text()[-3000:]
        assert _settled(email.pk) == [("welcome", "SENT", 1)]
    finally:
        stop_worker(worker)
    assert worker.returncode == 0  # the sweep's thread stopped with the worker
    assert "mails whose delivery was lost enqueued again" in log.read_text()
    assert len(worker_smtp_sink.mails()) == before + 1
