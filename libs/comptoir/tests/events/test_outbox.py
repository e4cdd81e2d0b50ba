"""publish_event writes the outbox in the caller's transaction; the relay publishes it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings

from comptoir import request_id_var
from comptoir.events import (
    ContractError,
    Envelope,
    NotInTransactionError,
    OutboxMessage,
    OutboxRelay,
    declare_topics,
    event_settings,
    publish_event,
)
from comptoir.events._kafka import producer_config
from comptoir.events.testing import read_topic, wait_for
from events.support import Spawner, headers_of, publish_notes


class Rollback(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_publishes_nothing_and_committed_one_publishes_exactly_once(
    notes_topic: str,
) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)

    def publish_then_fail() -> None:
        with transaction.atomic():
            publish_event("test.note-recorded", aggregate_id="note-1", payload={"seq": 1, "text": "lost"})
            raise Rollback

    with pytest.raises(Rollback):
        publish_then_fail()
    assert OutboxMessage.objects.count() == 0
    relay = OutboxRelay()
    assert relay.relay_once() == 0
    assert read_topic(notes_topic) == []

    with transaction.atomic():
        envelope = publish_event(
            "test.note-recorded", aggregate_id="note-2", payload={"seq": 2, "text": "kept"}
        )
    assert relay.relay_once() == 1
    assert relay.relay_once() == 0

    (message,) = read_topic(notes_topic)
    assert message.key() == b"note-2"
    value = json.loads(message.value() or b"")
    assert value["event_id"] == str(envelope.event_id)
    assert value["event_type"] == "test.note-recorded"
    assert value["schema_version"] == 1
    assert value["producer"] == "comptoir_chassis"
    assert value["aggregate_id"] == "note-2"
    assert value["payload"] == {"seq": 2, "text": "kept"}
    headers = headers_of(message)
    assert headers["event_id"] == str(envelope.event_id)
    assert headers["event_type"] == "test.note-recorded"
    assert headers["correlation_id"] == str(envelope.event_id)
    row = OutboxMessage.objects.get()
    assert row.sent_at is not None


@pytest.mark.django_db
def test_invalid_payload_raises_and_writes_nothing() -> None:
    with pytest.raises(ContractError) as caught, transaction.atomic():
        publish_event("test.note-recorded", aggregate_id="n", payload={"seq": -1})
    assert caught.value.errors == [
        "$: 'text' is a required property",
        "seq: -1 is less than the minimum of 0",
    ]
    assert OutboxMessage.objects.count() == 0


@pytest.mark.django_db
def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ContractError, match=r"unknown event type"), transaction.atomic():
        publish_event("test.never-declared", aggregate_id="n", payload={})
    assert OutboxMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_publish_outside_a_transaction_is_refused() -> None:
    with pytest.raises(NotInTransactionError):
        publish_event("test.note-recorded", aggregate_id="n", payload={"seq": 1, "text": "x"})
    assert OutboxMessage.objects.count() == 0


@pytest.mark.django_db
def test_context_travels_in_envelope_and_headers(notes_topic: str) -> None:
    token = request_id_var.set("req-77")
    try:
        with transaction.atomic():
            from_request = publish_event(
                "test.note-recorded", aggregate_id=uuid.UUID(int=5), payload={"seq": 1, "text": "a"}
            )
            explicit = publish_event(
                "test.note-recorded",
                aggregate_id=17,
                payload={"seq": 2, "text": Decimal("2.50")},
                saga_id="saga-1",
                correlation_id="corr-1",
                traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
    finally:
        request_id_var.reset(token)
    assert from_request.correlation_id == "req-77"
    assert from_request.aggregate_id == "00000000-0000-0000-0000-000000000005"
    row = OutboxMessage.objects.get(event_id=explicit.event_id)
    assert row.topic == notes_topic
    assert row.key == "17"
    assert row.headers == {
        "event_id": str(explicit.event_id),
        "event_type": "test.note-recorded",
        "schema_version": "1",
        "producer": "comptoir_chassis",
        "content-type": "application/json",
        "correlation_id": "corr-1",
        "saga_id": "saga-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    assert json.loads(row.envelope)["payload"] == {"seq": 2, "text": "2.50"}


@pytest.mark.django_db(transaction=True)
def test_the_stored_envelope_is_exactly_the_envelopes_json_form(notes_topic: str) -> None:
    with transaction.atomic():
        event = publish_event(
            "test.note-recorded", aggregate_id="café-1", payload={"seq": 3, "text": "crème brûlée \u2603"}
        )
    row = OutboxMessage.objects.get(event_id=event.event_id)
    assert row.envelope.encode() == event.to_json()
    assert Envelope.from_json(row.envelope) == event


@pytest.mark.django_db(transaction=True)
def test_old_sent_rows_are_deleted_and_pending_rows_kept(notes_topic: str, settings: Settings) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "OUTBOX_RETENTION": 0}
    publish_notes(3, keys=["a"])
    relay = OutboxRelay()
    assert relay.relay_once() == 3
    publish_notes(2, keys=["a"], start=3)
    assert relay.delete_old_sent() == 3
    assert list(OutboxMessage.objects.order_by("id").values_list("sent_at", flat=True)) == [None, None]


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        row = cursor.fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.django_db(transaction=True)
def test_the_relay_turns_synchronous_commit_off_once_per_database_session(notes_topic: str) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    relay = OutboxRelay()
    publish_notes(2, keys=["a"])
    with CaptureQueriesContext(connection) as queries:
        assert relay.relay_once() == 2
        assert relay.relay_once() == 0
    assert [q["sql"] for q in queries].count("SET synchronous_commit TO OFF") == 1
    assert _synchronous_commit() == "off"  # kept by the session after the batch committed

    connection.close()  # a new session (a restart, an idle timeout): set again on it
    assert _synchronous_commit() == "on"
    with CaptureQueriesContext(connection) as queries:
        assert relay.relay_once() == 0
    assert [q["sql"] for q in queries].count("SET synchronous_commit TO OFF") == 1
    assert _synchronous_commit() == "off"


def test_relay_wakes_on_notify_well_before_its_poll(spawner: Spawner, notes_topic: str) -> None:
    spawner.start("outbox_relay", EVENTSAPP_RELAY_POLL_INTERVAL="60")
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    # Let the relay reach its LISTEN wait (it sends nothing: the outbox is empty).
    wait_for(lambda: _relay_listening(), timeout_s=30, what="the relay to LISTEN")
    (envelope,) = publish_notes(1, keys=["k"])
    wait_for(lambda: len(read_topic(notes_topic)) == 1, timeout_s=10, what="the event on Kafka")
    assert OutboxMessage.objects.get().event_id == envelope.event_id
    wait_for(
        lambda: OutboxMessage.objects.filter(sent_at__isnull=False).count() == 1,
        timeout_s=10,
        what="the sent mark",
    )


def _relay_listening() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = 'LISTEN comptoir_outbox'"
        )
        row = cursor.fetchone()
    return bool(row and row[0] >= 1)


def test_two_relays_share_the_outbox_without_publishing_a_row_twice(
    spawner: Spawner, notes_topic: str
) -> None:
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    spawner.start("outbox_relay")
    spawner.start("outbox_relay")
    envelopes = publish_notes(300, keys=["a", "b", "c", "d"])
    wait_for(
        lambda: OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0,
        timeout_s=60,
        what="every row sent",
    )
    event_ids = [json.loads(m.value() or b"")["event_id"] for m in read_topic(notes_topic)]
    assert len(event_ids) == 300
    assert sorted(event_ids) == sorted(str(e.event_id) for e in envelopes)


@pytest.mark.django_db
def test_relay_wake_up_run_inside_an_enclosing_transaction_does_not_commit_it(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        publish_event("test.note-recorded", aggregate_id="n", payload={"seq": 1, "text": "kept inside"})
    assert len(callbacks) == 1
    assert OutboxMessage.objects.filter(key="n").count() == 1
    # Another connection does not see the row: the test's transaction was not committed.
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"],
    ) as other:
        row = other.execute("SELECT count(*) FROM comptoir_events_outboxmessage WHERE key = 'n'").fetchone()
    assert row == (0,)


@pytest.mark.django_db(transaction=True)
def test_a_row_the_broker_refuses_for_good_is_quarantined_after_its_attempts_and_the_rest_flows(
    notes_topic: str, settings: Settings
) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "OUTBOX_MAX_ATTEMPTS": 3}
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    # Larger than any message the producer (and the broker) accepts.
    too_large = OutboxMessage.objects.create(
        event_id=uuid.uuid4(),
        event_type="test.note-recorded",
        topic=notes_topic,
        key="big",
        envelope=json.dumps({"text": "x" * 1_100_000}),
        headers={},
    )
    relay = OutboxRelay()

    for attempt in (1, 2, 3):
        (note,) = publish_notes(1, keys=["fine"], start=attempt)
        assert relay.relay_once() == 1  # the other rows go out
        too_large.refresh_from_db()
        assert (too_large.attempts, too_large.sent_at) == (attempt, None)
        assert "MSG_SIZE_TOO_LARGE" in too_large.last_error
        assert (too_large.quarantined_at is not None) == (attempt == 3)
        assert OutboxMessage.objects.get(event_id=note.event_id).sent_at is not None

    # Quarantined: kept for an operator, no longer tried, counted apart from the backlog.
    assert relay.relay_once() == 0
    too_large.refresh_from_db()
    assert too_large.attempts == 3
    assert [json.loads(m.value() or b"")["payload"]["seq"] for m in read_topic(notes_topic)] == [1, 2, 3]
    from comptoir import metrics

    text = metrics.render()[0].decode()
    assert 'comptoir_outbox_quarantined{service="comptoir_chassis"} 1.0' in text
    assert 'comptoir_outbox_pending_messages{service="comptoir_chassis"} 0.0' in text


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_cannot_be_reached_counts_no_attempt(settings: Settings, notes_topic: str) -> None:
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "OUTBOX_MAX_ATTEMPTS": 1}
    publish_notes(1, keys=["a"])
    relay = OutboxRelay()
    # Nothing listens there: every delivery times out, which says nothing about the row.
    relay._producer = Producer(producer_config("127.0.0.1:1", **{"message.timeout.ms": 1000}))
    relay._known_topics.add(notes_topic)

    assert relay.relay_once() == 0

    row = OutboxMessage.objects.get()
    assert (row.attempts, row.quarantined_at, row.sent_at) == (0, None, None)


def test_a_relay_outlives_its_database_connections_being_cut(spawner: Spawner, notes_topic: str) -> None:
    """PostgreSQL restarted or failed over: the relay's connections die under it.
    It reconnects and goes on; before, the process stopped with the first error."""
    declare_topics([notes_topic], event_settings(), with_failure_topics=False)
    relay = spawner.start("outbox_relay", EVENTSAPP_RELAY_POLL_INTERVAL="0.2")
    publish_notes(1, keys=["before"])
    wait_for(lambda: len(read_topic(notes_topic)) == 1, timeout_s=30, what="the first event on Kafka")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    assert row is not None
    assert row[0] >= 1  # the relay's own connections, at least
    publish_notes(1, keys=["after"], start=1)

    wait_for(lambda: len(read_topic(notes_topic)) == 2, timeout_s=30, what="the second event on Kafka")
    wait_for(
        lambda: OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0,
        timeout_s=30,
        what="both rows marked sent",
    )
    assert relay.poll() is None, spawner.output(relay)
    assert sorted(m.key() or b"" for m in read_topic(notes_topic)) == [b"after", b"before"]
