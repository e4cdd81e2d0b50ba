"""The operations API of the event backbone, on the real broker: staff only; outbox
backlog and consumer lag; dead letters listed, shown, replayed once, purged."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import eventsapp.handlers  # noqa: F401 - registers the handler
import pytest
from django.test import Client
from eventsapp.models import Breakage, HandledNote
from pytest_django import Settings

from comptoir._health import Heartbeat
from comptoir.events import EventConsumer, OutboxRelay, ReplayedDeadLetter, event_settings
from comptoir.events.testing import read_topic, wait_for
from comptoir.testing import TokenFactory
from events.support import own_dlq, own_retry, publish_notes

PREFIX = "/api/ops/comptoir_chassis/"
ROUTES = [
    ("get", "events/"),
    ("get", "processes/"),
    ("get", "dlq/"),
    ("get", "dlq/comptoir_chassis.test.notes.dlq:0:0/"),
    ("post", "dlq/comptoir_chassis.test.notes.dlq:0:0/replay/"),
    ("post", "dlq/purge/"),
]


def relay_all() -> None:
    relay = OutboxRelay()
    for _ in range(100):
        if relay.relay_once() == 0:
            return
    raise AssertionError("outbox not drained in 100 batches")


def _call(
    client: Client, method: str, path: str, token: str | None, body: object = None
) -> tuple[int, dict[str, Any]]:
    headers = TokenFactory.header(token) if token else {}
    if method == "get":
        response = client.get(PREFIX + path, headers=headers)
    else:
        response = client.post(PREFIX + path, body or {}, content_type="application/json", headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_wants_a_token(client: Client, tokens: TokenFactory, method: str, path: str) -> None:
    status, body = _call(client, method, path, None)
    assert (status, body["error"]["code"]) == (401, "not_authenticated")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_customers_and_services(
    client: Client, tokens: TokenFactory, method: str, path: str
) -> None:
    for token in (tokens.user(7), tokens.service("order_service")):
        status, body = _call(client, method, path, token)
        assert (status, body["error"]["code"]) == (403, "permission_denied")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_admits_staff(
    client: Client, tokens: TokenFactory, notes_topic: str, method: str, path: str
) -> None:
    status, body = _call(client, method, path, tokens.user(1, is_staff=True), {"topic": notes_topic})
    # The letter named does not exist in this fresh topic; purging requires a confirmation.
    expected = {"events/": 200, "processes/": 200, "dlq/": 200, "dlq/purge/": 400}.get(path, 404)
    assert status == expected, body


@pytest.mark.django_db(transaction=True)
def test_events_report_the_outbox_and_the_lag_of_the_service_groups(
    client: Client, tokens: TokenFactory, notes_topic: str
) -> None:
    staff = tokens.user(1, is_staff=True)
    publish_notes(3, keys=["a", "b", "c"])
    status, body = _call(client, "get", "events/", staff)
    assert status == 200
    assert body["service"] == "comptoir_chassis"
    assert body["outbox"]["pending"] == 3
    assert body["outbox"]["oldest_pending_age_s"] >= 0
    assert body["outbox"]["published_last_hour"] == 0
    assert body["dead_letters"] == [{"topic": own_dlq(notes_topic), "count": 0}]

    relay_all()
    status, body = _call(client, "get", "events/", staff)
    assert body["outbox"] == {"pending": 0, "oldest_pending_age_s": None, "published_last_hour": 3}
    group = f"{event_settings().service}.events"
    main = [row for row in body["consumers"] if row["topic"] == notes_topic]
    assert {row["group"] for row in main} == {group}
    assert sorted(row["partition"] for row in main) == [0, 1, 2]
    assert sum(row["lag"] for row in main) == 3
    assert {row["topic"] for row in body["consumers"]} == {notes_topic}  # no retry topic yet

    consumer = EventConsumer()
    consumer.run(max_seconds=60, until=lambda: consumer.stats.handled == 3)
    assert HandledNote.objects.count() == 3
    status, body = _call(client, "get", "events/", staff)
    assert [row["lag"] for row in body["consumers"] if row["topic"] == notes_topic] == [0, 0, 0]
    # The consumer declared its retry topics: their partitions are reported too.
    retries = {row["topic"] for row in body["consumers"]} - {notes_topic}
    assert retries == {f"comptoir_chassis.{notes_topic}.retry.1", f"comptoir_chassis.{notes_topic}.retry.2"}


@pytest.mark.django_db(transaction=True)
def test_a_dead_letter_is_listed_shown_replayed_once_and_purged(
    client: Client, tokens: TokenFactory, notes_topic: str, group_id: str
) -> None:
    staff = tokens.user(1, is_staff=True)
    Breakage.objects.create(aggregate_id="order-9")
    (envelope,) = publish_notes(1, keys=["order-9"], breakable=True)
    relay_all()
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer.stats.dead_lettered == 1)
    dlq = own_dlq(notes_topic)

    status, listed = _call(client, "get", "dlq/", staff)
    assert status == 200
    (letter,) = listed["results"]
    assert letter["id"].startswith(f"{dlq}:0:")
    assert {k: v for k, v in letter.items() if k not in {"id", "failed_at"}} == {
        "topic": dlq,
        "event_type": "test.note-recorded",
        "event_id": str(envelope.event_id),
        "error": "eventsapp.handlers.PlannedFailure: order-9 is broken",
        "attempts": 3,
        "replayed_at": None,
    }
    assert _call(client, "get", f"dlq/?topic={notes_topic}", staff)[1] == listed
    assert _call(client, "get", f"dlq/?topic={dlq}", staff)[1] == listed
    status, body = _call(client, "get", "dlq/?topic=orders.order-created", staff)
    assert (status, body["error"]["code"]) == (400, "unknown_topic")
    assert body["error"]["details"]["known"] == [dlq]
    assert _call(client, "get", "dlq/?limit=0", staff)[0] == 400
    assert _call(client, "get", "events/", staff)[1]["dead_letters"] == [{"topic": dlq, "count": 1}]

    status, shown = _call(client, "get", f"dlq/{letter['id']}/", staff)
    assert status == 200
    assert shown["key"] == "order-9"
    assert shown["headers"]["x-original-topic"] == notes_topic
    assert shown["headers"]["x-consumer-group"] == group_id
    assert shown["payload"]["payload"] == {"seq": 0, "text": "note 0", "breakable": True}
    assert shown["payload"]["event_id"] == str(envelope.event_id)
    # Not a dead letter of this service, or nothing at that offset: 404.
    for other in (f"{notes_topic}:0:0", f"{dlq}:0:99", "garbage"):
        status, body = _call(client, "get", f"dlq/{other}/", staff)
        assert (status, body["error"]["code"]) == (404, "not_found")

    Breakage.objects.all().delete()  # the fix
    status, replayed = _call(client, "post", f"dlq/{letter['id']}/replay/", staff)
    retry = own_retry(notes_topic, 1)  # back to the group that failed it, not to every consumer
    assert (status, replayed["id"], replayed["replayed_to"]) == (202, letter["id"], retry)
    status, again = _call(client, "post", f"dlq/{letter['id']}/replay/", staff)
    assert (status, again["error"]["code"]) == (409, "already_replayed")
    assert again["error"]["details"]["replayed_to"] == retry
    assert ReplayedDeadLetter.objects.count() == 1
    assert len(read_topic(notes_topic)) == 1  # the original only
    assert len(read_topic(retry)) == 2  # the first failure, and one replay, not two
    assert _call(client, "get", "dlq/", staff)[1]["results"][0]["replayed_at"] == replayed["replayed_at"]
    consumer = EventConsumer(group_id=group_id)
    consumer.run(max_seconds=60, until=lambda: consumer.stats.handled == 1)
    assert list(HandledNote.objects.values_list("event_id", flat=True)) == [envelope.event_id]

    status, body = _call(client, "post", "dlq/purge/", staff, {"topic": notes_topic})
    assert (status, body["error"]["code"]) == (400, "confirmation_required")
    assert len(_call(client, "get", "dlq/", staff)[1]["results"]) == 1
    status, body = _call(client, "post", "dlq/purge/", staff, {"topic": "nope", "confirm": True})
    assert (status, body["error"]["code"]) == (400, "unknown_topic")
    status, body = _call(client, "post", "dlq/purge/", staff, {"topic": notes_topic, "confirm": True})
    assert (status, body) == (200, {"topic": dlq, "purged": 1})
    assert _call(client, "get", "dlq/", staff)[1] == {"results": []}
    assert _call(client, "get", "events/", staff)[1]["dead_letters"] == [{"topic": dlq, "count": 0}]


@pytest.mark.django_db(transaction=True)
def test_processes_report_heartbeats_and_the_broker_view_of_the_consumer_groups(
    client: Client,
    tokens: TokenFactory,
    notes_topic: str,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff = tokens.user(1, is_staff=True)
    (tmp_path / "Procfile").write_text("# kinds\nweb: gunicorn\nrelay: a\nconsumer: b\nbeat: c\n")
    settings.BASE_DIR = tmp_path
    monkeypatch.setenv("COMPTOIR_HEARTBEAT_DIR", str(tmp_path / "beats"))
    Heartbeat("comptoir_chassis", "relay").beat()
    Heartbeat("comptoir_chassis", "beat").beat()
    old = time.time() - 600
    os.utime(Heartbeat("comptoir_chassis", "beat").path, (old, old))

    status, body = _call(client, "get", "processes/", staff)
    assert status == 200
    assert body["service"] == "comptoir_chassis"
    relay, consumer, beat = body["processes"]
    assert (relay["process"], relay["status"]) == ("relay", "ok")
    assert relay["heartbeat_age_s"] < 60
    assert (beat["process"], beat["status"]) == ("beat", "stale")
    # No consumer runs: the broker knows the group without members, whatever the heartbeat.
    assert (consumer["process"], consumer["status"], consumer["heartbeat_age_s"]) == (
        "consumer",
        "down",
        None,
    )
    assert [(g["group"], g["members"]) for g in consumer["groups"]] == [("comptoir_chassis.events", 0)]


@pytest.mark.django_db(transaction=True)
def test_a_relay_running_in_the_consumer_process_is_reported_with_its_own_heartbeat(
    client: Client, tokens: TokenFactory, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = tokens.user(1, is_staff=True)
    (tmp_path / "Procfile").write_text(
        "web: gunicorn\nconsumer: python manage.py consume_events --with-relay\n"
    )
    settings.BASE_DIR = tmp_path
    monkeypatch.setenv("COMPTOIR_HEARTBEAT_DIR", str(tmp_path / "beats"))
    Heartbeat("comptoir_chassis", "relay").beat()

    status, body = _call(client, "get", "processes/", staff)
    assert status == 200
    assert [p["process"] for p in body["processes"]] == ["consumer", "relay"]
    assert body["processes"][1]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_worker_is_seen_on_the_service_queue(
    client: Client,
    tokens: TokenFactory,
    settings: Settings,
    tmp_path: Path,
    celery_worker_process: subprocess.Popen[bytes],
) -> None:
    staff = tokens.user(1, is_staff=True)
    (tmp_path / "Procfile").write_text("web: gunicorn\nworker: celery\n")
    settings.BASE_DIR = tmp_path
    found: list[dict[str, Any]] = []

    def worker_answers() -> bool:
        status, body = _call(client, "get", "processes/", staff)
        assert status == 200
        found[:] = body["processes"]
        return bool(found[0]["status"] == "ok")

    wait_for(worker_answers, timeout_s=60, what="the worker to answer on the comptoir_chassis queue")
    assert found[0]["process"] == "worker"
    assert found[0]["workers"] == 1
