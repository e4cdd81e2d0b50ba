"""The outbox (events written with the business change, waiting for the relay)
and the inbox (events a consumer group has handled, so a redelivery has no
second effect)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class OutboxMessage(models.Model):
    """One event to publish; `sent_at` is set once the broker acknowledged it."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=200)
    topic = models.CharField(max_length=249)
    key = models.CharField(max_length=255)
    envelope = models.TextField(help_text="The exact Kafka value (envelope JSON).")
    headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_default=Now())
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(sent_at__isnull=True), name="comptoir_outbox_pending"
            ),
            models.Index(
                fields=["sent_at"], condition=models.Q(sent_at__isnull=False), name="comptoir_outbox_sent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({'sent' if self.sent_at else 'pending'})"


class InboxMessage(models.Model):
    """Proof that `consumer` (a consumer group) handled `event_id`: written in the
    handler's own transaction."""

    pk = models.CompositePrimaryKey("consumer", "event_id")
    consumer = models.CharField(max_length=200)
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=200)
    topic = models.CharField(max_length=249)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    handled_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["handled_at"], name="comptoir_inbox_handled_at")]

    def __str__(self) -> str:
        return f"{self.consumer} handled {self.event_type} {self.event_id}"


class InboxEntry(models.Model):
    """The inbox table as the admin reads it. Django's admin cannot list a model
    with a composite primary key (InboxMessage's), so this unmanaged model maps
    the same table with `event_id` as its key; it is never written (and several
    consumer groups may hold the same event id, so it is never fetched by key)."""

    event_id = models.UUIDField(primary_key=True)
    consumer = models.CharField(max_length=200)
    event_type = models.CharField(max_length=200)
    topic = models.CharField(max_length=249)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    handled_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "comptoir_events_inboxmessage"
        verbose_name = "inbox entry"
        verbose_name_plural = "inbox"

    def __str__(self) -> str:
        return f"{self.consumer} handled {self.event_type} {self.event_id}"


class ReplayedDeadLetter(models.Model):
    """A dead letter the operations API wrote back to its topic: each is replayed
    once. Kafka keeps no such fact (the letter stays in its `.dlq` topic until
    purged or expired), so it is kept here, keyed by the letter's id."""

    letter_id = models.CharField(
        primary_key=True, max_length=300, help_text="<dlq topic>:<partition>:<offset>"
    )
    replayed_to = models.CharField(max_length=249)
    replayed_at = models.DateTimeField(db_default=Now())
    replayed_by = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.letter_id} replayed to {self.replayed_to}"
