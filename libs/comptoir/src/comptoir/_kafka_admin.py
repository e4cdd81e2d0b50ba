"""Creating the Kafka topics a service declares (idempotent, at start-up)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from ._kafka_security import kafka_client_config


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
    admin = AdminClient(kafka_client_config(bootstrap_servers, log_level=0))
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
            code = error.args[0].code()
            if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
                raise PermissionError(
                    f"Kafka topic {name} does not exist and this principal may not create it: "
                    "run `manage.py create_topics` with the admin principal first"
                ) from None
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return sorted(created)
