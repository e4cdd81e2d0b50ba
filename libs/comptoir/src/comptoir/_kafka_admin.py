"""Creating the Kafka topics a service declares (idempotent, at start-up)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TopicSpec:
    """A topic a service owns or needs: name, partitions and optional config."""

    name: str
    partitions: int = 3
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


def ensure_topics(
    topics: Iterable[TopicSpec], *, bootstrap_servers: str, timeout_s: float = 30.0
) -> list[str]:
    """Creates the topics that do not exist yet; returns the names it created."""
    wanted = {spec.name: spec for spec in topics}
    if not wanted:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [spec for name, spec in wanted.items() if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                config=spec.config,
            )
            for spec in missing
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return sorted(created)
