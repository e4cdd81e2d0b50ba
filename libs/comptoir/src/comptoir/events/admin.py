"""The outbox and the inbox in every service's admin: to look at, never to edit.

An event's story in one service: its outbox row (pending until the relay has
published it) and, on the consuming side, its inbox row per consumer group.
Search by event id, event type, or aggregate id (the Kafka key: an order's id
for the order events).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import InboxEntry, OutboxMessage


class _ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Rows the relay and the consumers own: the admin shows them and changes nothing."""

    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "pending"), ("yes", "sent"), ("quarantined", "quarantined")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "quarantined":
            # Refused by the broker for good: `last_error` says why (see the relay).
            return queryset.filter(quarantined_at__isnull=False)
        if self.value() in ("yes", "no"):
            return queryset.filter(sent_at__isnull=self.value() == "no")
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(_ReadOnlyAdmin):
    list_display = ("id", "event_type", "key", "topic", "event_id", "created_at", "sent_at", "quarantined_at")
    list_filter = (PublishedFilter, "event_type", "topic")
    search_fields = ("=key", "event_type", "event_id")
    search_help_text = "Aggregate id (e.g. an order's id), event type or event id."
    date_hierarchy = "created_at"
    ordering = ("-id",)


@admin.register(InboxEntry)
class InboxEntryAdmin(_ReadOnlyAdmin):
    list_display = ("event_id", "consumer", "event_type", "topic", "partition", "offset", "handled_at")
    # One row per (consumer, event id): no page of its own to link to.
    list_display_links = None
    list_filter = ("consumer", "event_type")
    search_fields = ("event_id", "event_type", "=consumer")
    search_help_text = "Event id, event type or consumer group."
    date_hierarchy = "handled_at"
    ordering = ("-handled_at",)
