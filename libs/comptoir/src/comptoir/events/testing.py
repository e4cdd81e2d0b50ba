"""Helpers for a service's event tests: envelopes, what the outbox holds, topics
of the test's own on the real broker, and the service's real relay and consumer
processes (`manage.py outbox_relay` / `consume_events`) on the test database.

    from comptoir.events.testing import deliver, make_envelope, published
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from comptoir._kafka_security import kafka_client_config
from comptoir.events import Envelope, OutboxMessage, handlers_for, publish_event, validate_payload
from comptoir.events._contracts import event_producer


def _service_dir() -> Path:
    """The folder of the service under test (its manage.py)."""
    return Path(settings.BASE_DIR)


def make_envelope(event_type: str, payload: dict[str, Any], *, producer: str | None = None) -> Envelope:
    """An incoming event as its owner (or `producer`) would have written it (its payload checked first)."""
    validate_payload(event_type, 1, payload)
    return Envelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=1,
        occurred_at=timezone.now(),
        producer=producer or event_producer(event_type) or "order_service",
        aggregate_id=str(payload.get("order_id") or payload.get("user_id")),
        payload=payload,
        correlation_id=str(uuid.uuid4()),
    )


def deliver(event: Envelope) -> None:
    """Runs the registered handler as the consumer does: inside one transaction."""
    handler = handlers_for()[event.event_type]
    with transaction.atomic():
        handler(event)


def published(event_type: str | None = None) -> list[dict[str, Any]]:
    """Payloads written to the outbox (oldest first), each checked against its contract."""
    rows = OutboxMessage.objects.order_by("id")
    if event_type is not None:
        rows = rows.filter(event_type=event_type)
    payloads = []
    for row in rows:
        envelope = Envelope.from_json(row.envelope)
        validate_payload(envelope.event_type, envelope.schema_version, envelope.payload)
        payloads.append(envelope.payload)
    return payloads


def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def unique_topics(event_types: list[str]) -> dict[str, str]:
    """A topic of the test's own per event type, so the platform's consumers never see test events."""
    suffix = uuid.uuid4().hex[:10]
    return {event_type: f"test.{event_type}-{suffix}" for event_type in event_types}


def delete_topics(prefixes: list[str]) -> None:
    admin = AdminClient(kafka_client_config(log_level=0))
    doomed = [name for name in admin.list_topics(timeout=10).topics if name.startswith(tuple(prefixes))]
    for future in admin.delete_topics(doomed, operation_timeout=30).values() if doomed else []:
        future.result(timeout=30)


def produce(topic: str, event: Envelope) -> None:
    """Writes `event` to Kafka as a relay would (key = aggregate id)."""
    producer = Producer({**kafka_client_config(), "enable.idempotence": True})
    producer.produce(
        topic,
        key=event.aggregate_id.encode(),
        value=event.to_json(),
        headers=list[tuple[str, str | bytes | None]](event.kafka_headers()),
    )
    assert producer.flush(30) == 0


def publish(event_type: str, payload: dict[str, Any], *, aggregate_id: str) -> Envelope:
    with transaction.atomic():
        return publish_event(event_type, aggregate_id=aggregate_id, payload=payload)


def read_topic(topic: str, *, timeout_s: float = 20.0) -> list[Message]:
    """Every message now in `topic`, read without committing anything."""
    reader = Consumer(
        {
            **kafka_client_config(),
            "group.id": f"test.reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 3,
        }
    )
    try:
        metadata = reader.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            return []
        assignment = []
        for partition in metadata.partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            if high > low:
                assignment.append(TopicPartition(topic, partition, low))
        if not assignment:
            return []
        reader.assign(assignment)
        pending = {tp.partition for tp in assignment}
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            message = reader.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(int(message.partition() or 0))
                continue
            messages.append(message)
        assert not pending, f"could not read {topic} to its end"
        return messages
    finally:
        reader.close()


def payloads_in(topic: str) -> list[dict[str, Any]]:
    return [json.loads(message.value() or b"")["payload"] for message in read_topic(topic)]


class ServiceProcesses:
    """`python manage.py <command>` of this service, on the test database and the test's topics."""

    def __init__(self, tmp_path: Path, topics: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.topics = topics
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def env(self, **extra: str) -> dict[str, str]:
        db = connection.settings_dict
        return {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "COMPTOIR_EVENT_TOPICS": json.dumps(self.topics),
            "COMPTOIR_EVENT_RETRY_DELAYS": "0.5",
            "COMPTOIR_EVENT_RELAY_POLL_INTERVAL": "0.2",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{args[0]}-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - manage.py of the service under test
                [sys.executable, "manage.py", *args],
                cwd=_service_dir(),
                env=self.env(**extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in self.processes)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def service_processes(tmp_path: Path, topics: dict[str, str]) -> Iterator[ServiceProcesses]:
    processes = ServiceProcesses(tmp_path, topics)
    try:
        yield processes
    finally:
        processes.stop_all()
        delete_topics(sorted(set(topics.values())))
