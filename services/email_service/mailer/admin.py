from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import SentEmail
from .services import email_requeue


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin[SentEmail]):
    """The mail log: read-only, except for sending failed mails again."""

    list_display = [
        "id",
        "template",
        "object_id",
        "to",
        "subject",
        "status",
        "attempts",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", "template"]
    search_fields = ["to", "object_id", "subject"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    readonly_fields = [
        "template",
        "object_id",
        "to",
        "subject",
        "body",
        "html_body",
        "context",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    ]
    actions = ["requeue"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SentEmail | None = None) -> bool:
        return False

    @admin.action(description="Send the selected unsent mails again")
    def requeue(self, request: HttpRequest, queryset: QuerySet[SentEmail]) -> None:
        requeued = email_requeue(email_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{len(requeued)} mail(s) queued again.", messages.SUCCESS)
