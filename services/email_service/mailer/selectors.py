"""Reads of email_service: the mail log."""

from __future__ import annotations

from django.db.models import QuerySet

from comptoir import ErrorCode, NotFoundError

from .mail_templates import MailTemplate
from .models import SentEmail


def email_list(
    *, template: str | None = None, to: str | None = None, status: str | None = None
) -> QuerySet[SentEmail]:
    emails = SentEmail.objects.all()
    if template:
        emails = emails.filter(template=template)
    if to:
        emails = emails.filter(to__iexact=to)
    if status:
        emails = emails.filter(status=status)
    return emails


def email_get(*, email_id: int) -> SentEmail:
    try:
        return SentEmail.objects.get(pk=email_id)
    except SentEmail.DoesNotExist:
        raise NotFoundError(ErrorCode.NOT_FOUND, "No such mail.") from None


MAIL_LOG_MAX = 500


def mail_log(*, limit: int = 50) -> list[dict[str, object]]:
    """The newest mails for the operations console; `order_id` for the order mails."""
    rows = SentEmail.objects.order_by("-created_at", "-id")[:limit]
    return [
        {
            "id": mail.pk,
            "to": mail.to,
            "subject": mail.subject,
            "template": mail.template,
            "status": mail.status,
            "sent_at": mail.sent_at,
            "order_id": int(mail.object_id)
            if mail.template != MailTemplate.WELCOME and mail.object_id.isdigit()
            else None,
        }
        for mail in rows
    ]
