"""What the broker says of partitions: which a topic has, and where each begins
and ends, for any number of partitions in one request per end (asked one
partition at a time, a group reading seven topics with their retry topics made
168 requests)."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition

# The timestamps a ListOffsets request reads as "the partition's first / next offset".
_LOWEST, _HIGHEST = -2, -1

PartitionKey = tuple[str, int]


def topic_partitions(probe: Consumer, topic: str, *, timeout_s: float) -> list[TopicPartition]:
    """The partitions of `topic`, in order; none when it does not exist."""
    metadata = probe.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    return [TopicPartition(topic, partition) for partition in sorted(metadata.partitions)]


def partition_ends(
    probe: Consumer, partitions: list[TopicPartition], *, timeout_s: float
) -> tuple[dict[PartitionKey, int], dict[PartitionKey, int]]:
    """The first and the next offset of each partition, by (topic, partition).
    Raises KafkaException when the broker cannot say for one of them."""
    return _end(probe, partitions, _LOWEST, timeout_s), _end(probe, partitions, _HIGHEST, timeout_s)


def topic_sizes(probe: Consumer, topics: list[str], *, timeout_s: float) -> dict[str, int]:
    """How many messages each of `topics` holds now (0 for one that does not exist)."""
    partitions = {topic: topic_partitions(probe, topic, timeout_s=timeout_s) for topic in topics}
    low, high = partition_ends(probe, [tp for tps in partitions.values() for tp in tps], timeout_s=timeout_s)
    return {
        topic: sum(max(0, high[(tp.topic, tp.partition)] - low[(tp.topic, tp.partition)]) for tp in tps)
        for topic, tps in partitions.items()
    }


def partition_lags(
    probe: Consumer, positions: list[TopicPartition], *, timeout_s: float
) -> dict[PartitionKey, int]:
    """How far each partition's end lies past where its group stands: the position
    given (a consumer's own, local to it), else the group's committed offset, else
    the partition's start (nothing read nor committed there). The committed offsets
    of the partitions without a position are asked in one request, the ends of all
    in one request per end. Raises KafkaException when the broker cannot say."""
    unread = [p for p in positions if p.offset < 0]
    stored = probe.committed(unread, timeout=timeout_s) if unread else []
    committed = {(p.topic, p.partition): p.offset for p in stored}
    low, high = partition_ends(
        probe, [TopicPartition(p.topic, p.partition) for p in positions], timeout_s=timeout_s
    )
    lags: dict[PartitionKey, int] = {}
    for partition in positions:
        key = (partition.topic, partition.partition)
        position = partition.offset if partition.offset >= 0 else committed.get(key, -1)
        if position < 0:
            position = low[key]
        lags[key] = max(0, high[key] - position)
    return lags


def _end(
    probe: Consumer, partitions: list[TopicPartition], end: int, timeout_s: float
) -> dict[PartitionKey, int]:
    if not partitions:
        return {}
    found = probe.offsets_for_times(
        [TopicPartition(p.topic, p.partition, end) for p in partitions], timeout=timeout_s
    )
    ends: dict[PartitionKey, int] = {}
    for partition in found:
        if partition.error is not None:
            raise KafkaException(partition.error)
        ends[(partition.topic, partition.partition)] = partition.offset
    return ends
