"""Consumers: one effect per event whatever the deliveries, retries, dead letters, order."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import eventsapp.handlers  # noqa: F401 - registers the handler
import pytest
from confluent_kafka import Consumer, Producer
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections
from eventsapp.handlers import connection_cuts
from eventsapp.models import Breakage, HandledNote
from pytest_django import Settings

from comptoir import kafka_client_config
from comptoir.events import (
    EventConsumer,
    InboxMessage,
    OutboxRelay,
    _consumer,
    declare_topics,
    event_settings,
    list_dead_letters,
)
from comptoir.events.testing import read_topic
from events.support import committed_total, headers_of, own_dlq, own_retry, publish_notes


def relay_all() -> int:
    relay, sent = OutboxRelay(), 0
    for _ in range(100):
        batch = relay.relay_once()
        sent += batch
        if batch == 0:
            return sent
    raise AssertionError("outbox not drained in 100 batches")


def produce_raw(
    topic: str, key: bytes, value: bytes, headers: list[tuple[str, str | bytes | None]] | None = None
) -> None:
    producer = Producer({**kafka_client_config(), "enable.idempotence": True})
    producer.produce(topic, key=key, value=value, headers=headers or [])
    assert producer.flush(30) == 0


@pytest.mark.django_db(transaction=True)
def test_same_event_delivered_twice_has_one_effect(notes_topic: str, group_id: str) -> None:
    (envelope,) = publish_notes(1, keys=["note-1"])
    assert relay_all() == 1
    (message,) = read_topic(notes_topic)
    produce_raw(
        notes_topic, b"note-1", message.value() or b"", [("event_id", str(envelope.event_id).encode())]
    )
    assert len(read_topic(notes_topic)) == 2

    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer_done(consumer, 2))
    assert (consumer.stats.handled, consumer.stats.duplicates) == (1, 1)
    assert list(HandledNote.objects.values_list("event_id", "attempt")) == [(envelope.event_id, 1)]
    assert list(InboxMessage.objects.values_list("consumer", "event_id")) == [(group_id, envelope.event_id)]


def consumer_done(consumer: EventConsumer, seen: int) -> bool:
    stats = consumer.stats
    return stats.handled + stats.duplicates + stats.skipped + stats.retried + stats.dead_lettered >= seen


def writing_transactions() -> int:
    """How many (sub)transactions wrote the handled notes: a savepoint gets an xid of its own."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(DISTINCT xmin::text) FROM {HandledNote._meta.db_table}")  # noqa: S608
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_first_deliveries_shares_one_transaction_without_savepoints(
    notes_topic: str, group_id: str
) -> None:
    envelopes = publish_notes(30, keys=["a", "b", "c"])
    relay_all()
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer_done(consumer, 30))
    assert consumer.stats.handled == 30
    assert HandledNote.objects.count() == 30
    assert InboxMessage.objects.filter(consumer=group_id).count() == 30
    # Polls may split the 30 messages, but not one transaction per message.
    assert writing_transactions() <= 5
    assert {e.event_id for e in envelopes} == set(HandledNote.objects.values_list("event_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_chunks_inbox_rows_are_one_statement_text_whatever_its_size(
    notes_topic: str, group_id: str
) -> None:
    """psycopg caches its parse of a statement only up to 50 parameters: the inbox
    write takes the chunk's rows as arrays, so its text never changes."""
    publish_notes(3, keys=["a"])
    relay_all()
    written: list[tuple[str, int]] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if "INSERT INTO" in sql and InboxMessage._meta.db_table in sql:
            rows = len(params[1]) if isinstance(params[1], list) else len(params) // 6
            written.append((sql, rows))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        consumer = EventConsumer(group_id=group_id)
        consumer.run(max_seconds=60, until=lambda: consumer_done(consumer, 3))
        publish_notes(20, keys=["b", "c"])
        relay_all()
        consumer.run(max_seconds=60, until=lambda: consumer_done(consumer, 23))

    assert consumer.stats.handled == 23
    assert sum(rows for _, rows in written) == 23
    assert {sql for sql, _ in written} == {_consumer.INSERT_INBOX_ROWS}
    assert max(rows for _, rows in written) > 8  # past the 50 parameters a row list would take


@pytest.mark.django_db(transaction=True)
def test_a_failing_handler_in_a_batch_costs_only_its_own_message(notes_topic: str, group_id: str) -> None:
    good = publish_notes(10, keys=["a", "b"])
    (bad,) = publish_notes(1, keys=["c"], start=10, fail_times=1)
    good += publish_notes(10, keys=["a", "b"], start=11)
    relay_all()
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer.stats.handled == 21)
    assert consumer.stats.retried == 1
    handled = dict(HandledNote.objects.values_list("event_id", "attempt"))
    assert len(handled) == HandledNote.objects.count() == 21  # nothing handled twice
    assert {e.event_id: 1 for e in good} | {bad.event_id: 2} == handled
    assert InboxMessage.objects.filter(consumer=group_id).count() == 21


@pytest.mark.django_db(transaction=True)
def test_a_consumer_outlives_its_database_connection_being_cut_mid_batch(
    notes_topic: str, group_id: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL restarted under a batch: the batch and its one-by-one redo both lose
    their connection. The consumer seeks back, reconnects and handles every event once,
    on its first attempt (nothing went to a retry topic); before, the process stopped."""
    monkeypatch.setattr(_consumer, "DB_RETRY_S", 0.1)
    before = publish_notes(5, keys=["a", "b"])
    (cut,) = publish_notes(1, keys=["c"], start=5, cut_connection_times=2)
    after = publish_notes(5, keys=["a", "b"], start=6)
    relay_all()
    consumer = EventConsumer(group_id=group_id)

    consumer.run(max_seconds=60, until=lambda: consumer.stats.handled == 11)

    assert connection_cuts[str(cut.event_id)] == 2
    assert "database unavailable" in caplog.text
    handled = dict(HandledNote.objects.values_list("event_id", "attempt"))
    assert len(handled) == HandledNote.objects.count() == 11  # nothing handled twice
    assert handled == {e.event_id: 1 for e in [*before, cut, *after]}
    # The rolled-back attempts are not counted: only what committed.
    assert (consumer.stats.handled, consumer.stats.retried, consumer.stats.dead_lettered) == (11, 0, 0)
    assert InboxMessage.objects.filter(consumer=group_id).count() == 11


@pytest.mark.django_db(transaction=True)
def test_handler_failing_twice_succeeds_through_the_retry_topics(notes_topic: str, group_id: str) -> None:
    (envelope,) = publish_notes(1, keys=["k"], fail_times=2)
    relay_all()
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer.stats.handled == 1)
    assert (consumer.stats.retried, consumer.stats.handled, consumer.stats.dead_lettered) == (2, 1, 0)
    assert list(HandledNote.objects.values_list("event_id", "attempt")) == [(envelope.event_id, 3)]
    first, second = (
        read_topic(own_retry(notes_topic, 1)),
        read_topic(own_retry(notes_topic, 2)),
    )
    assert [headers_of(m)["x-attempts"] for m in first + second] == ["1", "2"]
    assert headers_of(second[0])["x-original-topic"] == notes_topic
    assert headers_of(second[0])["x-error-message"] == "planned failure on attempt 2"
    assert read_topic(own_dlq(notes_topic)) == []


@pytest.mark.django_db(transaction=True)
def test_always_failing_goes_to_dlq_with_headers_and_replay_after_fix_is_handled_once(
    notes_topic: str, group_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Breakage.objects.create(aggregate_id="order-9")
    (envelope,) = publish_notes(1, keys=["order-9"], breakable=True)
    relay_all()
    (original,) = read_topic(notes_topic)
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer.stats.dead_lettered == 1)
    assert (consumer.stats.retried, consumer.stats.handled) == (2, 0)
    assert HandledNote.objects.count() == 0
    assert InboxMessage.objects.count() == 0

    (letter,) = list_dead_letters(own_dlq(notes_topic), bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    headers = {name: value.decode() for name, value in letter.headers}
    assert letter.key == b"order-9"
    assert letter.value == original.value()
    assert headers["x-original-topic"] == notes_topic
    assert headers["x-original-partition"] == str(original.partition())
    assert headers["x-original-offset"] == str(original.offset())
    assert headers["x-attempts"] == "3"
    assert headers["x-error-type"] == "eventsapp.handlers.PlannedFailure"
    assert headers["x-error-message"] == "order-9 is broken"
    assert headers["x-consumer-group"] == group_id
    assert headers["event_id"] == str(envelope.event_id)
    assert headers["x-first-failure-at"] <= headers["x-dead-lettered-at"]

    call_command("dlq", "list", "--topic", notes_topic)
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1
    assert listed[0].startswith(f"{letter.id}\t")
    assert listed[0].endswith("\tattempts=3\teventsapp.handlers.PlannedFailure: order-9 is broken")

    Breakage.objects.all().delete()  # the fix
    call_command("dlq", "replay", letter.id)
    call_command("dlq", "replay", letter.id)  # twice by mistake: still one effect
    assert capsys.readouterr().out.count(f"replayed {letter.id} -> {own_retry(notes_topic, 1)}") == 2
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer_done(consumer, 2))
    assert (consumer.stats.handled, consumer.stats.duplicates) == (1, 1)
    assert list(HandledNote.objects.values_list("event_id", "attempt")) == [(envelope.event_id, 1)]

    with pytest.raises(CommandError, match="nothing purged"):
        call_command("dlq", "purge", "--topic", notes_topic, stdin=io.StringIO("n\n"))
    assert capsys.readouterr().out == f"Delete the dead letters of {own_dlq(notes_topic)} for good? [y/N] "
    assert (
        len(
            list_dead_letters(
                own_dlq(notes_topic),
                bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            )
        )
        == 1
    )
    call_command("dlq", "purge", "--topic", notes_topic, "--yes")
    assert capsys.readouterr().out == f"purged 1 dead letter(s) from {own_dlq(notes_topic)}\n"
    assert (
        list_dead_letters(
            own_dlq(notes_topic),
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        )
        == []
    )
    call_command("dlq", "list", "--topic", notes_topic)
    assert capsys.readouterr().out == f"no dead letters in {own_dlq(notes_topic)}\n"


def test_dlq_purge_without_a_terminal_needs_yes(notes_topic: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is not a confirmation
    with pytest.raises(CommandError, match="confirm with --yes"):
        call_command("dlq", "purge", "--topic", notes_topic)


@pytest.mark.django_db(transaction=True)
def test_invalid_payload_and_undecodable_value_go_straight_to_dlq(notes_topic: str, group_id: str) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    (valid,) = publish_notes(1, keys=["k"])
    relay_all()
    (message,) = read_topic(notes_topic)
    broken = json.loads(message.value() or b"")
    broken["event_id"] = str(uuid.uuid4())
    broken["payload"] = {"seq": "not a number", "text": "x"}
    produce_raw(notes_topic, b"k", json.dumps(broken).encode())
    produce_raw(notes_topic, b"k", b"\xff not json")

    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer_done(consumer, 3))
    assert (consumer.stats.handled, consumer.stats.retried, consumer.stats.dead_lettered) == (1, 0, 2)
    assert list(HandledNote.objects.values_list("event_id", flat=True)) == [valid.event_id]
    letters = read_topic(own_dlq(notes_topic))
    assert [headers_of(m)["x-error-type"] for m in letters] == [
        "comptoir.events._contracts.ContractError",
        "comptoir.events._envelope.EnvelopeError",
    ]
    assert [headers_of(m)["x-attempts"] for m in letters] == ["1", "1"]
    assert headers_of(letters[0])["x-error-message"] == (
        "test.note-recorded: payload does not match schema version 1: "
        "seq: 'not a number' is not of type 'integer'"
    )
    for n in (1, 2):
        assert read_topic(own_retry(notes_topic, n)) == []


@pytest.mark.django_db(transaction=True)
def test_an_envelope_from_another_producer_than_the_owner_goes_to_dlq_with_the_reason(
    notes_topic: str, group_id: str
) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    (genuine,) = publish_notes(1, keys=["k"])
    relay_all()
    (message,) = read_topic(notes_topic)
    forged = json.loads(message.value() or b"")
    forged["event_id"] = str(uuid.uuid4())
    forged["producer"] = "mallory"
    # Alone, then in a chunk of valid first deliveries: both paths refuse it.
    produce_raw(notes_topic, b"k", json.dumps(forged).encode())
    (later,) = publish_notes(1, keys=["k"], start=1)
    relay_all()

    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer_done(consumer, 3))

    assert (consumer.stats.handled, consumer.stats.retried, consumer.stats.dead_lettered) == (2, 0, 1)
    assert sorted(HandledNote.objects.values_list("seq", flat=True)) == [0, 1]
    assert set(InboxMessage.objects.values_list("event_id", flat=True)) == {genuine.event_id, later.event_id}
    (letter,) = read_topic(own_dlq(notes_topic))
    headers = headers_of(letter)
    assert headers["x-error-type"] == "comptoir.events._contracts.ForeignProducerError"
    assert headers["x-error-message"] == (
        "test.note-recorded: only comptoir_chassis produces this event type "
        "(contracts/events/catalog.json), but the envelope names producer 'mallory'"
    )
    assert headers["x-attempts"] == "1"
    assert json.loads(letter.value() or b"")["event_id"] == forged["event_id"]
    for n in (1, 2):
        assert read_topic(own_retry(notes_topic, n)) == []


@pytest.mark.django_db(transaction=True)
def test_a_message_waiting_for_retry_does_not_block_other_keys(
    notes_topic: str, group_id: str, settings: Settings
) -> None:
    # Long enough for a second consumer to join and handle the other keys first,
    # even on a busy machine.
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "RETRY_DELAYS": [8.0]}
    publish_notes(1, keys=["slow"], fail_times=1)
    relay_all()
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=30, until=lambda: consumer.stats.retried == 1)
    publish_notes(20, keys=["a", "b", "c"], start=1)
    relay_all()
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: HandledNote.objects.count() == 21)
    handled = list(HandledNote.objects.order_by("id").values_list("aggregate_id", "attempt"))
    assert handled[-1] == ("slow", 2)
    assert sorted(handled[:-1]) == sorted((["a", "b", "c"][seq % 3], 1) for seq in range(1, 21))


@pytest.mark.django_db(transaction=True)
def test_a_retry_paused_across_a_rebalance_is_resumed_when_its_partition_comes_back(
    notes_topic: str, group_id: str, settings: Settings
) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "RETRY_DELAYS": [5.0]}
    (envelope,) = publish_notes(1, keys=["k"], fail_times=1)
    relay_all()
    consumer = EventConsumer(group_id=group_id)
    done = threading.Event()

    def consume() -> None:
        try:
            consumer.run(max_seconds=90, until=lambda: consumer.stats.handled == 1)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    # The retry is read before it is due: its partition is paused.
    deadline = time.monotonic() + 30
    while not consumer._paused and time.monotonic() < deadline:
        time.sleep(0.05)
    assert consumer._paused, "the retry was not deferred"

    # Another member joins (every partition is revoked and shared out), then leaves
    # (the first member gets them all back), while the retry is still waiting.
    intruder = Consumer(
        {
            **kafka_client_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
        }
    )
    intruder.subscribe(consumer.topics + consumer.retry_topics)
    end = time.monotonic() + 4
    while time.monotonic() < end:
        intruder.poll(0.2)
    intruder.close()

    done.wait(timeout=90)
    thread.join(timeout=5)
    assert consumer.stats.handled == 1, "the retry was never resumed after the rebalance"
    assert list(HandledNote.objects.values_list("event_id", "attempt")) == [(envelope.event_id, 2)]


@pytest.mark.django_db(transaction=True)
def test_a_lingering_consumer_gets_what_came_during_its_linger_in_one_batch(
    notes_topic: str, group_id: str, settings: Settings
) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "CONSUMER_LINGER_MS": 3000}
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    consumer = EventConsumer(group_id=group_id)
    handled_after_each_batch: list[int] = []

    def after_batch() -> bool:
        handled_after_each_batch.append(consumer.stats.handled)
        return consumer.stats.handled >= 12

    def consume() -> None:
        try:
            consumer.run(max_seconds=60, until=after_batch)
        finally:
            connections.close_all()  # this thread's own

    running = threading.Thread(target=consume)
    running.start()
    try:
        deadline = time.monotonic() + 30
        while not (consumer._consumer and consumer._consumer.assignment()):
            assert time.monotonic() < deadline, "the consumer was never assigned its partitions"
            time.sleep(0.1)
        # Twelve events relayed one by one over ~250 ms: without a linger each is a
        # fetch (and a batch) of its own.
        for _ in range(12):
            publish_notes(1, keys=["a"])
            assert relay_all() == 1
            time.sleep(0.02)
    finally:
        running.join(timeout=60)
    assert consumer.stats.handled == 12
    batches = [n for n in handled_after_each_batch if n]
    assert len(set(batches)) <= 2, handled_after_each_batch


@pytest.mark.django_db(transaction=True)
def test_handled_offsets_are_committed_in_the_background_and_all_of_them_on_close(
    notes_topic: str, group_id: str, settings: Settings
) -> None:
    # An interval longer than the test: whatever is committed while the consumer
    # runs was committed by a batch, not by the client's background commit.
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "CONSUMER_COMMIT_INTERVAL_MS": 600_000}
    publish_notes(5, keys=["a", "b"])
    assert relay_all() == 5
    consumer = EventConsumer(group_id=group_id)
    committed_once_all_were_handled: list[int] = []

    def all_handled() -> bool:
        if not consumer_done(consumer, 5):
            return False
        committed_once_all_were_handled.append(committed_total(group_id, notes_topic))
        return True

    consumer.run(max_seconds=60, until=all_handled)
    assert consumer.stats.handled == 5
    assert committed_once_all_were_handled == [0]  # handled and stored, not yet committed
    assert committed_total(group_id, notes_topic) == 5  # committed as the consumer closed
