"""Celery entry points: deliver the mails a transaction queued (one task for
them all, each retried alone if its attempt fails); deliver one queued mail,
retrying while SMTP is unavailable; and the sweep that enqueues the mails whose
task was lost (run by the worker itself, `mailer.sweep`; the task stays for an
operator's `call`)."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings

from .models import SentEmail
from .services import (
    DELIVERY_ERRORS,
    SEND_EMAIL_TASK,
    SEND_EMAILS_TASK,
    email_deliver,
    email_deliver_each,
    email_requeue_stalled,
)

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name=SEND_EMAIL_TASK,
    acks_late=True,
    autoretry_for=DELIVERY_ERRORS,
    max_retries=settings.EMAIL_SEND_MAX_RETRIES,
    retry_backoff=settings.EMAIL_RETRY_BACKOFF_S,
    retry_backoff_max=settings.EMAIL_RETRY_BACKOFF_MAX_S,
    retry_jitter=True,
)
def send_email(self: Task[[int], str], email_id: int) -> str:
    """Returns the mail's status after this attempt (SENT, FAILED, or QUEUED)."""
    final_attempt = self.request.retries >= (self.max_retries or 0)
    try:
        email = email_deliver(email_id=email_id, final_attempt=final_attempt)
    except SentEmail.DoesNotExist:
        # The row was never committed or has been deleted: nothing to send.
        logger.warning("no such mail to deliver", extra={"email_id": email_id})
        return "MISSING"
    return email.status


@shared_task(name=SEND_EMAILS_TASK, acks_late=True)
def send_emails(email_ids: list[int]) -> dict[str, int]:
    """First attempts of the mails, one after the other; how many ended in each state."""
    return email_deliver_each(email_ids=[int(email_id) for email_id in email_ids])


@shared_task(name="mailer.requeue_stalled_emails", acks_late=True, ignore_result=True)
def requeue_stalled_emails() -> list[int]:
    """`email_requeue_stalled` as a task (the worker sweeps on its own every EMAIL_SWEEP_INTERVAL_S)."""
    return email_requeue_stalled()
