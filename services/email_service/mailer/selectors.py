"""Reads of email_service: the mail log."""

from __future__ import annotations

from django.db.models import QuerySet

from comptoir import ErrorCode, NotFoundError

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
