"""Dead-letter tooling: list, show, replay and purge messages of `<service>.<topic>.dlq`.

Replay writes the message back to its original topic with its original key,
value and envelope headers (failure headers dropped, `x-replayed-from` added).
Every group reading that topic sees it again; groups that handled it before
find it in their inbox and skip it, so it is handled once by the group that
failed. Kafka cannot delete one message: purge drops everything before an
offset (by default, the whole topic) with the admin API's delete-records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from comptoir._kafka_security import kafka_client_config

from ._kafka import (
    DELIVERY_TIMEOUT_S,
    H_ATTEMPTS,
    H_FIRST_FAILURE,
    H_GROUP,
    H_ORIGINAL_OFFSET,
    H_ORIGINAL_PARTITION,
    H_ORIGINAL_TOPIC,
    H_REPLAYED_FROM,
    header_pairs,
    producer_config,
)
from ._topics import dlq_origin, retry_topic

READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    @property
    def id(self) -> str:
        """`<dlq topic>:<partition>:<offset>`, what `dlq show` and `dlq replay` take."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for header_name, value in self.headers:
            if header_name == name:
                return value.decode(errors="replace")
        return None


def parse_id(letter_id: str) -> tuple[str, int, int]:
    topic, partition, offset = letter_id.rsplit(":", 2)
    return topic, int(partition), int(offset)


def _reader(bootstrap_servers: str) -> Consumer:
    return Consumer(
        {
            **kafka_client_config(bootstrap_servers),
            "group.id": f"comptoir.dlq-reader.{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 3,
        }
    )


def _letter(message: Message) -> DeadLetter:
    return DeadLetter(
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        key=message.key(),
        value=message.value(),
        headers=header_pairs(message),
        timestamp_ms=message.timestamp()[1],
    )


def list_dead_letters(topic: str, *, bootstrap_servers: str, limit: int = 1000) -> list[DeadLetter]:
    """The messages now in `topic` (a `.dlq` topic), oldest first per partition."""
    reader = _reader(bootstrap_servers)
    try:
        metadata = reader.list_topics(topic, timeout=READ_TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        assignment = []
        for partition in metadata.partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=READ_TIMEOUT_S)
            if high > low:
                assignment.append(TopicPartition(topic, partition, low))
        if not assignment:
            return []
        reader.assign(assignment)
        open_partitions = {tp.partition for tp in assignment}
        letters: list[DeadLetter] = []
        deadline_polls = int(READ_TIMEOUT_S / 0.5) + limit
        for _ in range(deadline_polls):
            if not open_partitions or len(letters) >= limit:
                break
            message = reader.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(int(message.partition() or 0))
                continue
            letters.append(_letter(message))
        return letters
    finally:
        reader.close()


def get_dead_letter(letter_id: str, *, bootstrap_servers: str) -> DeadLetter | None:
    topic, partition, offset = parse_id(letter_id)
    reader = _reader(bootstrap_servers)
    try:
        # Whether the offset exists is the watermarks' answer: a fresh reader may see
        # an end-of-partition event before the fetch of the message itself arrives
        # (seen under load: a letter the list had just shown answered 404).
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=READ_TIMEOUT_S)
        if not low <= offset < high:
            return None
        reader.assign([TopicPartition(topic, partition, offset)])
        for _ in range(int(READ_TIMEOUT_S / 0.5)):
            message = reader.poll(0.5)
            if message is None or message.error() is not None:
                continue
            return _letter(message) if message.offset() == offset else None
        return None
    finally:
        reader.close()


def replay_dead_letter(letter: DeadLetter, *, bootstrap_servers: str) -> str:
    """Hands the letter back to the consumer group that dead-lettered it; returns the topic written.

    It goes to the service's own first retry topic, not to the original topic:
    the service's principal may write only its own `<service>.` topics (another
    service owns the event's topic), and only the group that failed should see it
    again, not every consumer of the event. The retry carries that group, its
    original coordinates and no spent attempts, so the consumer handles it after the
    first retry delay with every retry ahead of it; its inbox makes it count once.
    """
    origin = letter.header(H_ORIGINAL_TOPIC) or dlq_origin(letter.topic)
    service = letter.topic.removesuffix(f".{dlq_origin(letter.topic)}.dlq")
    target = retry_topic(origin, 1, service)
    kept_failure_headers = {
        H_ORIGINAL_TOPIC,
        H_ORIGINAL_PARTITION,
        H_ORIGINAL_OFFSET,
        H_GROUP,
        H_FIRST_FAILURE,
    }
    headers: list[tuple[str, str | bytes | None]] = [
        (name, value)
        for name, value in letter.headers
        if not name.startswith("x-") or name in kept_failure_headers
    ]
    headers += [(H_ATTEMPTS, b"0"), (H_REPLAYED_FROM, letter.id.encode())]
    producer = Producer(producer_config(bootstrap_servers))
    failures: list[str] = []
    producer.produce(
        target,
        key=letter.key,
        value=letter.value,
        headers=headers,
        on_delivery=lambda error, _message: failures.append(str(error)) if error else None,
    )
    if producer.flush(DELIVERY_TIMEOUT_S) or failures:
        raise RuntimeError(f"replay of {letter.id} to {target} failed: {failures}")
    return target


def purge_dead_letters(topic: str, *, bootstrap_servers: str, before_offset: int | None = None) -> int:
    """Deletes the messages of every partition of `topic` below `before_offset`
    (default: all of them); returns how many were deleted."""
    admin = AdminClient(kafka_client_config(bootstrap_servers, log_level=0))
    reader = _reader(bootstrap_servers)
    try:
        metadata = reader.list_topics(topic, timeout=READ_TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        targets, deleted = [], 0
        for partition in metadata.partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=READ_TIMEOUT_S)
            upto = high if before_offset is None else min(high, before_offset)
            if upto > low:
                targets.append(TopicPartition(topic, partition, upto))
                deleted += upto - low
    finally:
        reader.close()
    if targets:
        for future in admin.delete_records(targets, request_timeout=READ_TIMEOUT_S).values():
            future.result(timeout=READ_TIMEOUT_S)
    return deleted
