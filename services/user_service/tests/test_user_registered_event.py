"""Sign-up publishes `user.registered` through the outbox, in the registration's
transaction; the real relay process puts it on the broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from django.db import connection

from comptoir import kafka_client_config
from comptoir.events import Envelope, OutboxMessage, validate_payload
from tests.conftest import PASSWORD, Api
from users.models import User
from users.services import user_register

REGISTER = "/api/users/register/"
SERVICE_DIR = Path(__file__).resolve().parent.parent


def published() -> list[dict[str, Any]]:
    """user.registered payloads in the outbox, each checked against its contract."""
    payloads = []
    for row in OutboxMessage.objects.order_by("id"):
        envelope = Envelope.from_json(row.envelope)
        assert (envelope.event_type, row.key) == ("user.registered", envelope.aggregate_id)
        validate_payload(envelope.event_type, envelope.schema_version, envelope.payload)
        payloads.append(envelope.payload)
    return payloads


@pytest.mark.django_db
def test_registering_publishes_user_registered(api: Api) -> None:
    response = api.post(
        REGISTER, {"email": "Grace@Example.com", "password": PASSWORD, "full_name": "Grace Hopper"}
    )

    assert response.status_code == 201
    user = User.objects.get()
    assert published() == [
        {"user_id": str(user.pk), "email": "grace@example.com", "display_name": "Grace Hopper"}
    ]
    assert OutboxMessage.objects.get().key == str(user.pk)


@pytest.mark.django_db
def test_a_long_full_name_is_cut_to_the_events_display_name_limit() -> None:
    user = user_register(email="long@example.com", password=PASSWORD, full_name="N" * 200)

    assert user.full_name == "N" * 200
    assert published()[0]["display_name"] == "N" * 150


@pytest.mark.django_db
def test_a_refused_registration_publishes_nothing(api: Api, make_user: Any) -> None:
    make_user("grace@example.com")

    taken = api.post(REGISTER, {"email": "grace@example.com", "password": PASSWORD})
    weak = api.post(REGISTER, {"email": "weak@example.com", "password": "Sh0rt-pw"})

    assert (taken.status_code, weak.status_code) == (409, 400)
    assert User.objects.count() == 1
    assert OutboxMessage.objects.count() == 0


@pytest.fixture
def registered_topic(settings: Any) -> Iterator[str]:
    topic = f"test.user.registered-{uuid.uuid4().hex[:10]}"
    settings.COMPTOIR_EVENTS = {
        **getattr(settings, "COMPTOIR_EVENTS", {}),
        "TOPICS": {"user.registered": topic},
    }
    yield topic
    admin = AdminClient(kafka_client_config(log_level=0))
    if topic in admin.list_topics(timeout=10).topics:
        admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)


def read_values(topic: str, *, expected: int, timeout_s: float) -> list[dict[str, Any]]:
    reader = Consumer(
        {
            **kafka_client_config(),
            "group.id": f"test.reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, 0) for p in partitions])
        values: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(values) < expected and time.monotonic() < deadline:
            message = reader.poll(0.2)
            if message is None or message.error() is not None:
                continue
            values.append(json.loads(message.value() or b""))
        return values
    finally:
        reader.close()


@pytest.mark.django_db(transaction=True)
def test_the_relay_process_publishes_the_event_to_the_broker(
    api: Api, registered_topic: str, tmp_path: Path
) -> None:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "COMPTOIR_EVENT_TOPICS": json.dumps({"user.registered": registered_topic}),
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "relay.log"
    with log.open("wb") as out:
        relay = subprocess.Popen(
            [sys.executable, "manage.py", "outbox_relay"], cwd=SERVICE_DIR, env=env, stdout=out, stderr=out
        )
    try:
        response = api.post(REGISTER, {"email": "ada@example.com", "password": PASSWORD, "full_name": "Ada"})
        assert response.status_code == 201

        deadline = time.monotonic() + 30
        while OutboxMessage.objects.filter(sent_at__isnull=True).exists():
            assert time.monotonic() < deadline, f"the relay sent nothing in 30 s:\n{log.read_text()}"
            time.sleep(0.1)

        (value,) = read_values(registered_topic, expected=1, timeout_s=20)
        assert value["event_type"] == "user.registered"
        assert value["producer"] == "user_service"
        assert value["payload"] == {
            "user_id": str(response.json()["id"]),
            "email": "ada@example.com",
            "display_name": "Ada",
        }
    finally:
        relay.terminate()
        relay.wait(timeout=20)
