"""The Celery tasks, run in-process (eager): one delivery task per transaction's
mails, retries, backoff, final state."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery.signals import task_prerun
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app as celery_app
from mailer.models import SentEmail
from mailer.services import email_request, email_requeue_stalled
from mailer.tasks import send_email, send_emails

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


@pytest.fixture
def tasks_run() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """(task name, args) of every task run, in order (eager: as they are enqueued)."""
    runs: list[tuple[str, tuple[Any, ...]]] = []

    def record(sender: Any = None, args: Any = None, **kwargs: Any) -> None:
        runs.append((sender.name, tuple(args or ())))

    task_prerun.connect(record, weak=False, dispatch_uid="test-tasks-run")
    try:
        yield runs
    finally:
        task_prerun.disconnect(dispatch_uid="test-tasks-run")


def _welcome(object_id: str) -> SentEmail:
    email, created = email_request(
        template="welcome",
        object_id=object_id,
        to=f"user{object_id}@comptoir.dev",
        context={"full_name": f"User {object_id}"},
    )
    assert created
    return email


@pytest.fixture
def queued_mail(email_factory: Callable[..., SentEmail]) -> Callable[..., SentEmail]:
    """A QUEUED mail to user<n>@comptoir.dev whose delivery nobody enqueued."""

    def create(n: int, **fields: Any) -> SentEmail:
        return email_factory(object_id=str(n), to=f"user{n}@comptoir.dev", **fields)

    return create


class _HandlerFailedError(Exception):
    pass


def _queued_then_rolled_back(object_id: str) -> SentEmail:
    """A mail queued in a transaction (or savepoint) that then rolls back, as a failing handler's."""
    try:
        with transaction.atomic():
            email = _welcome(object_id)
            raise _HandlerFailedError
    except _HandlerFailedError:
        assert not SentEmail.objects.filter(pk=email.pk).exists()
        return email


@pytest.mark.django_db(transaction=True)
def test_the_mails_of_one_transaction_are_delivered_by_one_task(
    smtp_sink: SmtpSink, tasks_run: list[tuple[str, tuple[Any, ...]]]
) -> None:
    """As the consumer queues a batch's mails: one Celery message for them all."""
    with transaction.atomic():
        emails = [_welcome(str(n)) for n in (31, 32, 33)]
        assert tasks_run == []  # nothing before the commit
    assert tasks_run == [("mailer.send_emails", ([email.pk for email in emails],))]
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.mails()) == [
        "user31@comptoir.dev",
        "user32@comptoir.dev",
        "user33@comptoir.dev",
    ]
    assert set(SentEmail.objects.values_list("status", "attempts")) == {("SENT", 1)}


@pytest.mark.django_db(transaction=True)
def test_a_mail_of_a_rolled_back_savepoint_is_skipped_and_the_others_sent(
    smtp_sink: SmtpSink, tasks_run: list[tuple[str, tuple[Any, ...]]]
) -> None:
    """As the consumer's careful path: a handler's savepoint rolled back, the batch commits."""
    with transaction.atomic():
        lost = _queued_then_rolled_back("41")
        kept = _welcome("42")
    assert tasks_run == [("mailer.send_emails", ([lost.pk, kept.pk],))]
    assert [m.rcpt_tos for m in smtp_sink.mails()] == [["user42@comptoir.dev"]]
    assert list(SentEmail.objects.values_list("pk", "status")) == [(kept.pk, "SENT")]
    assert send_emails.apply(args=([lost.pk, kept.pk],)).get() == {
        "SENT": 1,
        "FAILED": 0,
        "RETRYING": 0,
        "MISSING": 1,
    }
    assert len(smtp_sink.mails()) == 1  # the sent one is not sent again


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_retries")
def test_a_failed_first_attempt_is_retried_alone_as_often_as_a_mail_of_its_own(
    smtp_sink: SmtpSink,
    tasks_run: list[tuple[str, tuple[Any, ...]]],
    queued_mail: Callable[..., SentEmail],
) -> None:
    first, second = queued_mail(51), queued_mail(52)
    smtp_sink.stop()
    result = send_emails.apply(args=([first.pk, second.pk],))
    assert result.get() == {"SENT": 0, "FAILED": 0, "RETRYING": 2, "MISSING": 0}
    # Each handed to `send_email`, which counts the batch's attempt as its first:
    # six attempts in all with five retries, as `test_smtp_down_retries_then_fails_without_raising`.
    assert [name for name, _ in tasks_run][:2] == ["mailer.send_emails", "mailer.send_email"]
    assert {args for name, args in tasks_run if name == "mailer.send_email"} == {(first.pk,), (second.pk,)}
    stored = SentEmail.objects.order_by("pk")
    assert list(stored.values_list("status", "attempts")) == [("FAILED", 6), ("FAILED", 6)]


@pytest.mark.django_db(transaction=True)
def test_the_sweep_enqueues_its_stalled_mails_in_one_task(
    smtp_sink: SmtpSink,
    tasks_run: list[tuple[str, tuple[Any, ...]]],
    queued_mail: Callable[..., SentEmail],
) -> None:
    emails = [queued_mail(n, requeue_at=timezone.now() - timedelta(seconds=1)) for n in (61, 62)]
    assert email_requeue_stalled() == [email.pk for email in emails]
    assert tasks_run == [("mailer.send_emails", ([email.pk for email in emails],))]
    assert set(SentEmail.objects.values_list("status", flat=True)) == {"SENT"}
    assert len(smtp_sink.mails()) == 2


@pytest.mark.django_db(transaction=True)
def test_ids_of_rolled_back_mails_are_forgotten_after_a_while(
    smtp_sink: SmtpSink, tasks_run: list[tuple[str, tuple[Any, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailer import services

    _queued_then_rolled_back("71")
    monkeypatch.setattr(services._QueuedThisTransaction, "FORGET_AFTER_S", 0.0)
    kept = _welcome("72")  # outside a transaction: committed, enqueued at once
    assert tasks_run == [("mailer.send_emails", ([kept.pk],))]
    assert [m.rcpt_tos for m in smtp_sink.mails()] == [["user72@comptoir.dev"]]


def test_a_task_locks_sends_and_records_its_mails_in_groups_of_two_statements(
    smtp_sink: SmtpSink, queued_mail: Callable[..., SentEmail]
) -> None:
    """DELIVERY_LOCK_MAX mails to a transaction: their rows locked by one statement,
    their outcomes (a permanent refusal among them) written by one."""
    from mailer.services import DELIVERY_LOCK_MAX

    smtp_sink.rejected_recipients.add("user83@comptoir.dev")
    emails = [queued_mail(80 + n) for n in range(DELIVERY_LOCK_MAX + 2)]
    sent_before = SentEmail.objects.filter(pk=emails[0].pk).update(status="SENT")
    with CaptureQueriesContext(connection) as queries:
        outcome = send_emails.apply(args=([e.pk for e in emails] + [987654321],)).get()

    assert outcome == {"SENT": DELIVERY_LOCK_MAX + 1, "FAILED": 1, "RETRYING": 0, "MISSING": 1}
    statements = [q["sql"].split(None, 1)[0] for q in queries.captured_queries]
    # Two groups (inside the test's transaction each is a savepoint, not a transaction).
    savepoints = {"SAVEPOINT", "RELEASE"}
    assert [s for s in statements if s not in savepoints] == ["SELECT", "UPDATE", "SELECT", "UPDATE"]
    assert sent_before == 1
    assert len(smtp_sink.mails()) == DELIVERY_LOCK_MAX  # neither the sent one nor the refused one
    stored = dict(SentEmail.objects.values_list("object_id", "status"))
    assert stored.pop("80") == "SENT"
    assert stored.pop("83") == "FAILED"
    assert set(stored.values()) == {"SENT"}
    assert SentEmail.objects.get(object_id="83").last_error.startswith("SMTPRecipientsRefused: ")
    assert set(SentEmail.objects.exclude(object_id="80").values_list("attempts", flat=True)) == {1}


def test_a_mail_that_cannot_be_sent_fails_alone_and_its_group_is_sent(
    smtp_sink: SmtpSink, queued_mail: Callable[..., SentEmail]
) -> None:
    """Not a delivery error (Django refuses an address with a newline): the mail is
    FAILED with the reason, the others of its group go, and nothing is raised
    (a failed task would leave the group QUEUED for the sweep to send again)."""
    first, broken, last = queued_mail(91), queued_mail(92), queued_mail(93)
    SentEmail.objects.filter(pk=broken.pk).update(to="user92@comptoir.dev\nBcc: someone@example.com")

    outcome = send_emails.apply(args=([first.pk, broken.pk, last.pk],)).get()

    assert outcome == {"SENT": 2, "FAILED": 1, "RETRYING": 0, "MISSING": 0}
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.mails()) == ["user91@comptoir.dev", "user93@comptoir.dev"]
    stored = SentEmail.objects.get(pk=broken.pk)
    assert (stored.status, stored.attempts) == ("FAILED", 1)
    assert stored.last_error.startswith("ValueError: ")
