"""The real parts answer: PostgreSQL, Redis, a Celery worker over Redis, Kafka."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection
from testapp.models import Note
from testapp.tasks import multiply

from comptoir import TopicSpec, ensure_topics, event_topic_spec, kafka_client_config
from comptoir.events import event_settings
from comptoir.events._topics import topic_specs


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


def test_topics_take_the_configured_partitions_and_replication_factor(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # The environment, unless the service's COMPTOIR_EVENTS says otherwise (the tests' does).
    settings.COMPTOIR_EVENTS = {k: v for k, v in settings.COMPTOIR_EVENTS.items() if k != "TOPIC_PARTITIONS"}
    monkeypatch.setenv("COMPTOIR_EVENT_TOPIC_PARTITIONS", "5")
    monkeypatch.setenv("COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR", "3")
    config = event_settings()

    specs = topic_specs(["test.rf"], config, with_failure_topics=True)

    assert (config.topic_partitions, config.topic_replication_factor) == (5, 3)
    assert {spec.replication_factor for spec in specs} == {3}  # main, retries and dead letters alike
    assert [spec.partitions for spec in specs if not spec.name.endswith(".dlq")] == [5] * (len(specs) - 1)


def test_a_service_s_declared_topics_follow_the_deployment_s_sizing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPTOIR_EVENT_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR", "3")

    spec = event_topic_spec("orders.order-created")

    assert (spec.partitions, spec.replication_factor) == (12, 3)
    assert spec.config == {"retention.ms": str(7 * 24 * 3600 * 1000)}
    monkeypatch.setenv("COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR", "zero")
    with pytest.raises(ValueError, match="COMPTOIR_EVENT_TOPIC_"):
        event_topic_spec("orders.order-created")


def test_a_replication_factor_above_the_broker_count_is_refused_before_anything_is_created() -> None:
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    topic = f"test.rf-{uuid.uuid4().hex[:8]}"

    with pytest.raises(ValueError, match=r"replication factor 2 exceeds the 1 broker\(s\)"):
        ensure_topics([TopicSpec(topic, partitions=1, replication_factor=2)], bootstrap_servers=bootstrap)

    admin = AdminClient(kafka_client_config(bootstrap, log_level=0))
    assert topic not in admin.list_topics(timeout=10).topics
