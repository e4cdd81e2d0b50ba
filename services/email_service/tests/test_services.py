import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from comptoir import ApplicationError
from mailer.models import SentEmail
from mailer.services import email_deliver, email_request, email_requeue

from .smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db


def _request(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "template": "welcome",
        "object_id": "2",
        "to": "alice@comptoir.dev",
        "context": {"full_name": "Alice Martin"},
    }
    values.update(overrides)
    return values


def test_request_stores_the_rendered_mail_and_enqueues_delivery_after_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        CaptureQueriesContext(connection) as queries,
    ):
        email, created = email_request(**_request())
    assert created is True
    assert len(callbacks) == 1
    # A first request inserts without reading: the unique constraint catches a repeat.
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    stored = SentEmail.objects.get()
    assert stored.pk == email.pk
    assert (stored.template, stored.object_id, stored.to) == ("welcome", "2", "alice@comptoir.dev")
    assert stored.subject == "Welcome to Comptoir, Alice Martin"
    assert stored.body.startswith("Hello Alice Martin,\n")
    assert stored.context == {"full_name": "Alice Martin"}
    assert (stored.status, stored.attempts, stored.last_error, stored.sent_at) == ("QUEUED", 0, "", None)


def test_a_request_inside_a_transaction_is_one_statement_and_a_repeat_leaves_it_usable() -> None:
    """As the consumer calls it, in its batch's transaction: no savepoint around the
    insert, and a repeat neither writes nor breaks the transaction."""
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            first, created = email_request(**_request())
        assert created is True
        assert [q["sql"].split(None, 1)[0] for q in queries.captured_queries] == ["INSERT"]
        again, created_again = email_request(**_request())
        assert (again.pk, created_again) == (first.pk, False)
        assert SentEmail.objects.count() == 1  # the transaction still answers
    stored = SentEmail.objects.get()
    assert (stored.pk, stored.status, stored.requeue_at) == (first.pk, "QUEUED", first.requeue_at)
    assert stored.created_at == first.created_at


def test_same_template_and_object_again_returns_the_first_mail_and_enqueues_nothing(
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, _ = email_request(**_request())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again, created = email_request(**_request(to="other@example.com", context={"full_name": "Other"}))
    assert created is False
    assert callbacks == []
    assert again.pk == first.pk
    assert SentEmail.objects.count() == 1
    assert SentEmail.objects.get().to == "alice@comptoir.dev"


def test_same_object_with_another_template_is_another_mail() -> None:
    email_request(**_request(template="welcome", object_id="5"))
    email_request(
        **_request(
            template="order_cancelled", object_id="5", context={"order_id": 5, "reason": "payment_failed"}
        )
    )
    assert sorted(SentEmail.objects.values_list("template", flat=True)) == ["order_cancelled", "welcome"]


def test_database_refuses_a_second_row_for_the_same_template_and_object(
    email_factory: Callable[..., SentEmail],
) -> None:
    email_factory(template="welcome", object_id="3")
    with pytest.raises(IntegrityError):
        email_factory(template="welcome", object_id="3")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"template": "newsletter"}, "unknown_template"),
        ({"context": {}}, "missing_context"),
    ],
)
def test_invalid_request_writes_no_row_and_enqueues_nothing(
    overrides: dict[str, Any], code: str, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(ApplicationError) as caught,
    ):
        email_request(**_request(**overrides))
    assert caught.value.code == code
    assert callbacks == []
    assert SentEmail.objects.count() == 0


def test_deliver_sends_through_smtp_and_marks_sent(smtp_sink: SmtpSink, settings: Any) -> None:
    settings.DEFAULT_FROM_EMAIL = "Comptoir <no-reply@comptoir.dev>"
    email, _ = email_request(
        **_request(
            template="order_confirmed",
            object_id="42",
            context={"order_id": 42, "total": "59.90", "currency": "EUR"},
        )
    )
    delivered = email_deliver(email_id=email.pk, final_attempt=False)
    assert delivered.status == "SENT"
    stored = SentEmail.objects.get(pk=email.pk)
    assert (stored.status, stored.attempts, stored.last_error) == ("SENT", 1, "")
    assert stored.sent_at is not None
    [mail] = smtp_sink.mails()
    assert mail.mail_from == "no-reply@comptoir.dev"
    assert mail.rcpt_tos == ["alice@comptoir.dev"]
    assert mail.subject == "Your Comptoir order #42 is confirmed"
    assert mail.message["To"] == "alice@comptoir.dev"
    assert mail.message["X-Comptoir-Email-Id"] == str(email.pk)
    assert mail.message["X-Comptoir-Template"] == "order_confirmed"
    assert "Total: 59.90 EUR" in mail.text
    assert mail.html is not None
    assert "<strong>59.90 EUR</strong>" in mail.html


def test_mails_share_one_smtp_session_until_the_server_closes_it(smtp_sink: SmtpSink) -> None:
    first, _ = email_request(**_request(object_id="1"))
    second, _ = email_request(**_request(object_id="2"))
    email_deliver(email_id=first.pk, final_attempt=False)
    email_deliver(email_id=second.pk, final_attempt=False)

    smtp_sink.stop()  # the server goes away and comes back: the open session is dead
    smtp_sink.start()
    third, _ = email_request(**_request(object_id="3"))
    delivered = email_deliver(email_id=third.pk, final_attempt=False)

    assert delivered.status == "SENT"
    peers = [mail.peer for mail in smtp_sink.mails()]
    assert len(peers) == 3
    assert peers[0] == peers[1]
    assert peers[2] != peers[0]
    assert SentEmail.objects.get(pk=third.pk).attempts == 1


def test_deliver_twice_sends_one_mail(smtp_sink: SmtpSink) -> None:
    email, _ = email_request(**_request())
    email_deliver(email_id=email.pk, final_attempt=False)
    again = email_deliver(email_id=email.pk, final_attempt=False)
    assert again.status == "SENT"
    assert len(smtp_sink.mails()) == 1
    assert SentEmail.objects.get().attempts == 1


def test_failed_attempt_is_recorded_and_raised_then_a_later_attempt_sends(smtp_sink: SmtpSink) -> None:
    email, _ = email_request(**_request())
    smtp_sink.stop()
    with pytest.raises(ConnectionRefusedError):
        email_deliver(email_id=email.pk, final_attempt=False)
    stored = SentEmail.objects.get()
    assert (stored.status, stored.attempts, stored.sent_at) == ("QUEUED", 1, None)
    assert stored.last_error.startswith("ConnectionRefusedError: ")

    smtp_sink.start()
    email_deliver(email_id=email.pk, final_attempt=False)
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.last_error) == ("SENT", 2, "")
    assert [mail.rcpt_tos for mail in smtp_sink.mails()] == [["alice@comptoir.dev"]]


def test_failed_final_attempt_marks_failed_without_raising(smtp_sink: SmtpSink) -> None:
    email, _ = email_request(**_request())
    smtp_sink.stop()
    delivered = email_deliver(email_id=email.pk, final_attempt=True)
    assert delivered.status == "FAILED"
    stored = SentEmail.objects.get()
    assert (stored.status, stored.attempts, stored.sent_at) == ("FAILED", 1, None)
    assert stored.last_error.startswith("ConnectionRefusedError: ")


def test_permanent_refusal_fails_at_once_without_retry(smtp_sink: SmtpSink) -> None:
    smtp_sink.rejected_recipients.add("ghost@comptoir.dev")
    email, _ = email_request(**_request(to="ghost@comptoir.dev"))
    delivered = email_deliver(email_id=email.pk, final_attempt=False)
    assert delivered.status == "FAILED"
    stored = SentEmail.objects.get()
    assert (stored.status, stored.attempts) == ("FAILED", 1)
    assert stored.last_error.startswith("SMTPRecipientsRefused: ")
    assert "No such mailbox" in stored.last_error
    assert smtp_sink.mails() == []


def test_failed_mail_is_not_sent_by_a_late_duplicate_delivery(smtp_sink: SmtpSink) -> None:
    email, _ = email_request(**_request())
    SentEmail.objects.filter(pk=email.pk).update(status="FAILED", attempts=6)
    assert email_deliver(email_id=email.pk, final_attempt=False).status == "FAILED"
    assert smtp_sink.mails() == []
    assert SentEmail.objects.get().attempts == 6


def test_requeue_sends_failed_mails_again_and_leaves_sent_ones(
    smtp_sink: SmtpSink,
    email_factory: Callable[..., SentEmail],
    django_capture_on_commit_callbacks: Any,
) -> None:
    failed = email_factory(status="FAILED", attempts=6, last_error="ConnectionRefusedError: down")
    sent = email_factory(status="SENT", attempts=1)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        requeued = email_requeue(email_ids=[failed.pk, sent.pk])
    assert requeued == [failed.pk]
    assert len(callbacks) == 1
    failed.refresh_from_db()
    sent.refresh_from_db()
    assert (failed.status, failed.attempts, failed.last_error) == ("SENT", 7, "")
    assert (sent.status, sent.attempts) == ("SENT", 1)
    assert [mail.rcpt_tos for mail in smtp_sink.mails()] == [[failed.to]]


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_make_one_row(smtp_sink: SmtpSink) -> None:
    """Four callers at once: the unique constraint, not a prior read, decides who creates."""
    barrier = threading.Barrier(4, timeout=10)
    outcomes: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait()
            email, created = email_request(**_request(object_id="77"))
            outcomes.append((email.pk, created))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len({pk for pk, _ in outcomes}) == 1
    assert sorted(created for _, created in outcomes) == [False, False, False, True]
    assert SentEmail.objects.filter(object_id="77").count() == 1
    # Delivery ran eagerly in the creating thread, before it was joined.
    assert len(smtp_sink.mails()) == 1
