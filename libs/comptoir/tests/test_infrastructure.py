"""The real parts answer: PostgreSQL, Redis, a Celery worker over Redis, Kafka."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings
from django.db import connection
from testapp.models import Note
from testapp.tasks import multiply

from comptoir import TopicSpec, ensure_topics, kafka_client_config


@pytest.mark.django_db
def test_model_round_trip_through_postgresql() -> None:
    note = Note.objects.create(title="hello", body="from the chassis")
    Note.objects.filter(pk=note.pk).update(body="changed in SQL")
    fetched = Note.objects.get(pk=note.pk)
    assert (fetched.title, fetched.body) == ("hello", "changed in SQL")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM testapp_note WHERE id = %s", [note.pk])
        assert cursor.fetchone() == ("changed in SQL",)


def test_redis_round_trip() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"test:{uuid.uuid4()}"
    assert client.set(key, "value", ex=30) is True
    assert client.get(key) == b"value"
    assert client.incrby(f"{key}:n", 5) == 5
    client.delete(key, f"{key}:n")
    assert client.get(key) is None


def test_celery_task_runs_in_a_real_worker(celery_worker_process: subprocess.Popen[bytes]) -> None:
    result = multiply.delay(6, 7)
    value = result.get(timeout=60)
    assert value["product"] == 42
    assert value["pid"] == celery_worker_process.pid
    assert value["pid"] != os.getpid()


def test_kafka_round_trip_with_idempotent_producer_and_manual_commit() -> None:
    topic = f"test.roundtrip-{uuid.uuid4().hex[:8]}"
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    assert ensure_topics([TopicSpec(topic, partitions=1)], bootstrap_servers=bootstrap) == [topic]
    # Declaring it again creates nothing.
    assert ensure_topics([TopicSpec(topic, partitions=1)], bootstrap_servers=bootstrap) == []

    producer = Producer({**kafka_client_config(), "enable.idempotence": True, "acks": "all"})
    delivered: list[tuple[str | None, int | None]] = []
    producer.produce(
        topic,
        key=b"order-17",
        value=b'{"hello": "kafka"}',
        headers=[("event_type", b"test.sent"), ("correlation_id", b"c-1")],
        on_delivery=lambda err, msg: delivered.append((str(err) if err else None, msg.offset())),
    )
    assert producer.flush(30) == 0
    assert delivered == [(None, 0)]

    group = f"test.roundtrip-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            **kafka_client_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        message = None
        deadline = time.monotonic() + 30
        while message is None and time.monotonic() < deadline:
            candidate = consumer.poll(0.5)
            if candidate is not None and candidate.error() is None:
                message = candidate
        assert message is not None, "no message consumed within 30 s"
        assert message.key() == b"order-17"
        assert message.value() == b'{"hello": "kafka"}'
        assert message.headers() == [("event_type", b"test.sent"), ("correlation_id", b"c-1")]
        consumer.commit(message=message, asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == 1
    finally:
        consumer.close()
