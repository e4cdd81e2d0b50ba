"""Outbox and inbox rows past their retention are deleted in short chunks, and the sweep keeps
pace with the writes: it runs between full batches too and deletes more than a chunk when behind."""

from __future__ import annotations

from datetime import timedelta

import eventsapp.handlers  # noqa: F401 - registers the handler
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from comptoir.events import EventConsumer, OutboxMessage, OutboxRelay, declare_topics, event_settings
from comptoir.events._retention import RetentionSweeper
from comptoir.events.models import InboxMessage

OUTBOX = OutboxMessage._meta.db_table
INBOX = InboxMessage._meta.db_table


def add_outbox_rows(count: int, topic: str, *, sent: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OUTBOX} "  # noqa: S608 - our table
            "(event_id, event_type, topic, key, envelope, headers, created_at, sent_at) "
            "SELECT gen_random_uuid(), 'test.note-recorded', %s, 'k', '{}', '{}'::jsonb, "
            "now() - interval '2 days', CASE WHEN %s THEN now() - interval '2 days' END "
            "FROM generate_series(1, %s)",
            [topic, sent, count],
        )


def add_inbox_rows(count: int, group: str, *, age: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {INBOX} (consumer, event_id, event_type, topic, partition, "offset", handled_at) '  # noqa: S608
            "SELECT %s, gen_random_uuid(), 'test.note-recorded', 't', 0, n, now() - %s::interval "
            "FROM generate_series(1, %s) AS n",
            [group, age, count],
        )


@pytest.mark.django_db(transaction=True)
def test_sent_rows_past_retention_are_all_deleted_even_beyond_one_chunk(
    notes_topic: str, settings: Settings
) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "OUTBOX_RETENTION": 3600}
    add_outbox_rows(12_000, notes_topic, sent=True)
    add_outbox_rows(5, notes_topic, sent=False)
    relay = OutboxRelay()
    assert relay.delete_old_sent() == 12_000
    assert OutboxMessage.objects.filter(sent_at__isnull=False).count() == 0
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 5


@pytest.mark.django_db(transaction=True)
def test_the_relay_sweeps_while_its_batches_are_full(notes_topic: str, settings: Settings) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "OUTBOX_RETENTION": 3600, "RELAY_BATCH_SIZE": 1}
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    add_outbox_rows(3_000, notes_topic, sent=True)
    add_outbox_rows(20_000, notes_topic, sent=False)  # ten times what one-row batches publish in 2 s
    relay = OutboxRelay()
    relay.run(max_seconds=2.0)
    assert OutboxMessage.objects.filter(sent_at__isnull=True).exists(), "every batch of the run was full"
    assert relay.stats.deleted >= 3_000
    assert not OutboxMessage.objects.filter(sent_at__lt=timezone.now() - timedelta(days=1)).exists()


@pytest.mark.django_db(transaction=True)
def test_only_this_groups_inbox_rows_past_retention_are_deleted(group_id: str, settings: Settings) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "INBOX_RETENTION": 24 * 3600}
    add_inbox_rows(12_000, group_id, age="3 days")
    add_inbox_rows(7, group_id, age="1 hour")
    add_inbox_rows(11, "another.group", age="3 days")
    consumer = EventConsumer(group_id=group_id)
    assert consumer.delete_old_inbox_rows() == 12_000
    assert InboxMessage.objects.filter(consumer=group_id).count() == 7
    assert InboxMessage.objects.filter(consumer="another.group").count() == 11


@pytest.mark.django_db(transaction=True)
def test_a_sweep_deletes_in_chunks_and_a_budget_cut_makes_it_due_again_soon(group_id: str) -> None:
    add_inbox_rows(2_500, group_id, age="3 days")
    statement = (
        f"DELETE FROM {INBOX} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {INBOX} "  # noqa: S608
        "WHERE consumer = %s AND handled_at < now() - interval '1 day' LIMIT %s))"
    )
    sweeper = RetentionSweeper(
        statement=statement, params=[group_id], every_s=3600, chunk=1_000, catch_up_s=0
    )
    with CaptureQueriesContext(connection) as queries:
        assert sweeper.sweep(budget_s=float("inf")) == 2_500
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 1,000 + 1,000 + 500: one short transaction each
    assert not sweeper.due()  # caught up: next sweep in an hour

    add_inbox_rows(2_500, group_id, age="3 days")
    assert sweeper.sweep(budget_s=0.0) == 0  # no budget: nothing done
    assert sweeper.due()  # behind: due again after catch_up_s
