"""Writes of email_service: queue a mail once per (template, object id), deliver it.

A mail is recorded (QUEUED) in the transaction that asks for it, e.g. the
consumer's with its inbox row; its delivery is enqueued once that commits, one
task for every mail the transaction queued (`mailer.send_emails`: a consumer's
batch of events is one Celery message, not one per mail). Redis may be down at
that moment: the mail then waits, and the sweep (`email_requeue_stalled`, a
thread of the worker: `mailer.sweep`) enqueues every QUEUED mail whose
`requeue_at` has passed, so a mail is sent later, never dropped, and sent once
(`email_deliver` locks the row and sends only a QUEUED mail). A mail whose
attempt failed is retried alone, with backoff (`mailer.send_email`).
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from psycopg.types.json import Jsonb

from .mail_templates import mail_render, mail_template_get
from .models import SentEmail

logger = logging.getLogger(__name__)

# Errors worth another try later: the SMTP server is down, slow or says "try again".
DELIVERY_ERRORS: tuple[type[Exception], ...] = (smtplib.SMTPException, OSError)

ERROR_TEXT_LIMIT = 2000
SWEEP_BATCH = 500
SEND_EMAIL_TASK = "mailer.send_email"
SEND_EMAILS_TASK = "mailer.send_emails"
# Mails per delivery task at most (the sweep's and the requeue's batches are split).
DELIVERY_BATCH_MAX = 100
# Mails of a task locked, sent and recorded in one transaction.
DELIVERY_LOCK_MAX = 10


def _requeue_at(*, extra_s: float = 0.0) -> datetime:
    return timezone.now() + timedelta(seconds=float(settings.EMAIL_REQUEUE_AFTER_S) + extra_s)


def _enqueue_deliveries(email_ids: Iterable[int]) -> None:
    """One delivery task per DELIVERY_BATCH_MAX mails (by name: the task module
    imports this one; registered in MailerConfig.ready)."""
    ids = list(email_ids)
    for start in range(0, len(ids), DELIVERY_BATCH_MAX):
        batch = ids[start : start + DELIVERY_BATCH_MAX]
        try:
            current_app.tasks[SEND_EMAILS_TASK].delay(batch)
        except (BrokerError, OSError):
            # The broker is down: the mails stay QUEUED and the sweep enqueues them later.
            logger.warning(
                "could not enqueue a mail's delivery; the sweep will", extra={"email_ids": batch[:20]}
            )


class _QueuedThisTransaction(threading.local):
    """The mails this thread queued whose delivery is not enqueued yet.

    Each queued mail adds its id and registers `enqueue` to run on commit; the
    first of those callbacks to run enqueues every id gathered, the others find
    nothing left. An id whose transaction (or savepoint) rolled back stays until
    the next commit: the delivery skips it (no row). Ids older than
    FORGET_AFTER_S are dropped when the next is added, so a thread that only
    rolls back keeps no more than that: a mail among them that did commit is
    sent by the sweep (every QUEUED mail past its `requeue_at`)."""

    FORGET_AFTER_S = 3600.0

    def __init__(self) -> None:
        self.email_ids: list[tuple[float, int]] = []

    def add(self, email_id: int) -> None:
        now = time.monotonic()
        if self.email_ids and self.email_ids[0][0] < now - self.FORGET_AFTER_S:
            self.email_ids = [entry for entry in self.email_ids if entry[0] >= now - self.FORGET_AFTER_S]
        self.email_ids.append((now, email_id))
        transaction.on_commit(self.enqueue)

    def enqueue(self) -> None:
        queued, self.email_ids = self.email_ids, []
        if queued:
            _enqueue_deliveries(email_id for _, email_id in queued)


_queued_this_transaction = _QueuedThisTransaction()


def email_request(
    *, template: str, object_id: str, to: str, context: Mapping[str, Any]
) -> tuple[SentEmail, bool]:
    """Renders and queues a mail; the same (template, object_id) again returns the first row.

    Returns the row and whether this call created it. The row is inserted first
    and the unique constraint on (template, object_id) settles a repeat: its
    insert writes nothing (`ON CONFLICT DO NOTHING`) and the first row is read
    instead, so two concurrent requests still make one row and one delivery,
    and a first request (nearly every one) costs one statement and no read.
    The delivery is enqueued after commit
    (at once when called outside a transaction: the insert committed; at the
    end of the caller's transaction otherwise, e.g. the consumer's, in one task
    with the transaction's other mails): a worker must find the row. If the
    broker is down at that moment the row stays QUEUED and the sweep enqueues
    it after EMAIL_REQUEUE_AFTER_S. The insert is
    the only write, so the function needs no transaction of its own around it.
    """
    mail_template = mail_template_get(name=template)
    rendered = mail_render(template=mail_template, context=context)
    email = _queued(
        SentEmail(
            template=mail_template.value,
            object_id=object_id,
            to=to,
            subject=rendered.subject,
            body=rendered.body,
            html_body=rendered.html_body,
            context=dict(context),
            requeue_at=_requeue_at(),
        )
    )
    if email is None:
        return SentEmail.objects.get(template=mail_template.value, object_id=object_id), False
    _queued_this_transaction.add(email.pk)
    return email, True


_INSERT_UNLESS_REQUESTED = (
    f"INSERT INTO {SentEmail._meta.db_table} "  # noqa: S608 - the model's own table
    '(template, object_id, "to", subject, body, html_body, context, status, attempts, last_error, '
    "created_at, sent_at, requeue_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s) "
    "ON CONFLICT (template, object_id) DO NOTHING RETURNING id"
)


def _queued(email: SentEmail) -> SentEmail | None:
    """Inserts the unsaved QUEUED `email` unless its (template, object_id) has a row
    already; returns it saved, or None for a repeat (nothing written). One
    statement, where a savepoint around the model's insert (for the repeat's
    IntegrityError) takes three; any other constraint still refuses the row."""
    email.created_at = timezone.now()
    params: list[Any] = [
        email.template,
        email.object_id,
        email.to,
        email.subject,
        email.body,
        email.html_body,
        Jsonb(email.context),
        email.status,
        email.attempts,
        email.last_error,
        email.created_at,
        email.requeue_at,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_UNLESS_REQUESTED, params)
        row = cursor.fetchone()
    if row is None:
        return None
    email.pk = row[0]
    email._state.adding = False
    return email


def _is_permanent(error: Exception) -> bool:
    """A 5xx answer (unknown mailbox, rejected sender): retrying cannot help."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


# This process's open mail connection and the settings it was opened with: one SMTP
# session serves every mail the process sends (a connection, greeting and EHLO per
# mail cost the worker and the mail server more than the mail itself).
_open_connection: tuple[tuple[str, str, int], BaseEmailBackend] | None = None


def _mail_connection() -> BaseEmailBackend:
    global _open_connection
    wanted = (settings.EMAIL_BACKEND, settings.EMAIL_HOST, int(settings.EMAIL_PORT))
    if _open_connection is None or _open_connection[0] != wanted:
        _close_mail_connection()
        backend = get_connection(fail_silently=False)
        backend.open()
        _open_connection = (wanted, backend)
    return _open_connection[1]


def _close_mail_connection() -> None:
    global _open_connection
    if _open_connection is not None:
        with contextlib.suppress(*DELIVERY_ERRORS):  # already gone
            _open_connection[1].close()
        _open_connection = None


def _send_over_smtp(email: SentEmail) -> None:
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
        headers={"X-Comptoir-Email-Id": str(email.pk), "X-Comptoir-Template": email.template},
    )
    if email.html_body:
        message.attach_alternative(email.html_body, "text/html")
    try:
        _mail_connection().send_messages([message])
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        # The server closed the idle session (or went away): one fresh session.
        _close_mail_connection()
        _mail_connection().send_messages([message])


def email_deliver(*, email_id: int, final_attempt: bool) -> SentEmail:
    """Sends a QUEUED mail once and records the outcome of the attempt.

    The row stays locked while the SMTP conversation runs, so two deliveries of
    the same task (acks late, redelivery) cannot both send: the second waits,
    then finds SENT and does nothing. A failed attempt is recorded (attempts,
    last_error) and its error re-raised for the caller to retry, unless it was
    the final attempt or a permanent refusal: then the mail is FAILED and
    nothing is raised.
    """
    with transaction.atomic():
        email = SentEmail.objects.select_for_update().get(pk=email_id)
        if email.status != SentEmail.Status.QUEUED:
            return email
        failure = _attempt(email, final_attempt=final_attempt)
        _record_attempts([email])
    if failure is not None:
        raise failure
    return email


def _attempt(email: SentEmail, *, final_attempt: bool) -> Exception | None:
    """Sends the locked QUEUED `email` and sets its status, attempts, last_error,
    sent_at and requeue_at to the outcome (`_record_attempts` writes them);
    returns the error when the mail is worth another attempt later. A mail that
    cannot be built or sent at all (not a delivery error) is FAILED."""
    email.attempts += 1
    try:
        _send_over_smtp(email)
    except DELIVERY_ERRORS as error:
        email.last_error = f"{type(error).__name__}: {error}"[:ERROR_TEXT_LIMIT]
        if final_attempt or _is_permanent(error):
            email.status = SentEmail.Status.FAILED
            logger.error(
                "mail delivery failed for good",
                extra={"email_id": email.pk, "attempts": email.attempts, "error": email.last_error},
            )
            return None
        # The retry comes within the backoff's cap; if it is lost, the sweep sends it.
        email.requeue_at = _requeue_at(extra_s=float(settings.EMAIL_RETRY_BACKOFF_MAX_S))
        logger.warning(
            "mail delivery failed, will retry",
            extra={"email_id": email.pk, "attempts": email.attempts, "error": email.last_error},
        )
        return error
    except Exception as error:
        # The message itself cannot go (e.g. an address SMTP cannot carry) and no
        # later attempt builds it differently: FAILED, for the staff to see,
        # instead of failing the task (and the group sent with it) at every sweep.
        email.last_error = f"{type(error).__name__}: {error}"[:ERROR_TEXT_LIMIT]
        email.status = SentEmail.Status.FAILED
        logger.exception("mail cannot be sent", extra={"email_id": email.pk, "error": email.last_error})
        return None
    email.status = SentEmail.Status.SENT
    email.sent_at = timezone.now()
    email.last_error = ""
    return None


def email_deliver_each(*, email_ids: list[int]) -> dict[str, int]:
    """Delivers the mails as the first attempt of each, DELIVERY_LOCK_MAX at a
    time: their rows locked together (one statement) while their SMTP
    conversations run one after the other, their outcomes recorded together
    (one statement), as `email_deliver` does for one. Returns how many ended in
    each state: SENT, FAILED (refused for good), RETRYING, MISSING.

    A mail whose attempt failed and may succeed later is handed, once the
    outcomes commit, to a task of its own (`mailer.send_email`, counting this
    attempt as its first), which retries it with backoff; if that task cannot
    be enqueued, the sweep sends the mail. A mail already sent or failed is
    left alone; an id without a row (its transaction rolled back) is skipped. A
    crash while a group is being sent leaves its rows QUEUED: the redelivered
    task (acks late) sends that group's mails again, at most DELIVERY_LOCK_MAX.
    """
    no_retries = int(settings.EMAIL_SEND_MAX_RETRIES) <= 0
    outcomes = dict.fromkeys(("SENT", "FAILED", "RETRYING", "MISSING"), 0)
    wanted = list(dict.fromkeys(email_ids))
    for start in range(0, len(wanted), DELIVERY_LOCK_MAX):
        group = wanted[start : start + DELIVERY_LOCK_MAX]
        with transaction.atomic():
            emails = list(SentEmail.objects.select_for_update().filter(pk__in=group).order_by("pk"))
            outcomes["MISSING"] += len(group) - len(emails)
            attempted: list[SentEmail] = []
            for email in emails:
                if email.status != SentEmail.Status.QUEUED:
                    outcomes[email.status] += 1
                    continue
                attempted.append(email)
                if _attempt(email, final_attempt=no_retries) is None:
                    outcomes[email.status] += 1
                else:
                    outcomes["RETRYING"] += 1
                    transaction.on_commit(partial(_enqueue_retry, email.pk))
            if attempted:
                _record_attempts(attempted)
    return outcomes


_RECORD_ATTEMPTS = (
    f"UPDATE {SentEmail._meta.db_table} AS mail SET status = v.status, attempts = v.attempts, "  # noqa: S608
    "last_error = v.last_error, sent_at = v.sent_at, requeue_at = v.requeue_at "
    "FROM (VALUES {rows}) AS v (id, status, attempts, last_error, sent_at, requeue_at) WHERE mail.id = v.id"
)
_ATTEMPT_ROW = "(%s::bigint, %s, %s::integer, %s, %s::timestamptz, %s::timestamptz)"


def _record_attempts(emails: list[SentEmail]) -> None:
    """Writes what `_attempt` set on the `emails` in one statement (Django's
    `bulk_update` builds a CASE per field and row: twice the CPU of a `save` per row)."""
    params: list[Any] = []
    for email in emails:
        params += [email.pk, email.status, email.attempts, email.last_error, email.sent_at, email.requeue_at]
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_ATTEMPTS.format(rows=", ".join([_ATTEMPT_ROW] * len(emails))), params)


def _enqueue_retry(email_id: int) -> None:
    """`mailer.send_email` for the mail, after the backoff of a first retry."""
    countdown = get_exponential_backoff_interval(
        factor=int(settings.EMAIL_RETRY_BACKOFF_S),
        retries=0,
        maximum=int(settings.EMAIL_RETRY_BACKOFF_MAX_S),
        full_jitter=True,
    )
    try:
        # `retries` goes into the message (the task's count starts there); the stubs omit it.
        current_app.tasks[SEND_EMAIL_TASK].apply_async(  # type: ignore[call-arg]
            (email_id,), countdown=countdown, retries=1
        )
    except (BrokerError, OSError):
        logger.warning("could not enqueue a mail's retry; the sweep will", extra={"email_id": email_id})


def email_requeue(*, email_ids: list[int]) -> list[int]:
    """Sends FAILED (or never-enqueued QUEUED) mails again; SENT ones are left alone."""
    with transaction.atomic():
        emails = list(
            SentEmail.objects.select_for_update()
            .filter(pk__in=email_ids)
            .exclude(status=SentEmail.Status.SENT)
            .order_by("pk")
        )
        for email in emails:
            email.status = SentEmail.Status.QUEUED
            email.requeue_at = _requeue_at()
            email.save(update_fields=["status", "requeue_at"])
        transaction.on_commit(partial(_enqueue_deliveries, [email.pk for email in emails]))
    return [email.pk for email in emails]


def email_requeue_stalled() -> list[int]:
    """Enqueues again every QUEUED mail whose delivery has not run by its
    `requeue_at` (its task was never enqueued, or lost); returns their ids.

    A mail being delivered right now is locked and skipped.
    """
    with transaction.atomic():
        stalled = list(
            SentEmail.objects.select_for_update(skip_locked=True)
            .filter(status=SentEmail.Status.QUEUED, requeue_at__lt=timezone.now())
            .order_by("requeue_at")[:SWEEP_BATCH]
        )
        for email in stalled:
            email.requeue_at = _requeue_at()
            email.save(update_fields=["requeue_at"])
        transaction.on_commit(partial(_enqueue_deliveries, [email.pk for email in stalled]))
    if stalled:
        logger.warning(
            "mails whose delivery was lost enqueued again",
            extra={"count": len(stalled), "email_ids": [email.pk for email in stalled][:20]},
        )
    return [email.pk for email in stalled]
