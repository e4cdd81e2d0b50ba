"""Creating the Kafka topics a service declares (idempotent, at start-up)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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


def event_topic_spec(name: str) -> TopicSpec:
    """An event topic as the deployment configures them: partitions, replication factor
    and retention from COMPTOIR_EVENT_TOPIC_PARTITIONS (3), _REPLICATION_FACTOR (1) and
    _RETENTION_MS (7 days), read when the settings load."""
    environ = os.environ
    try:
        partitions = int(environ.get("COMPTOIR_EVENT_TOPIC_PARTITIONS", "3"))
        replication_factor = int(environ.get("COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR", "1"))
        retention_ms = int(environ.get("COMPTOIR_EVENT_TOPIC_RETENTION_MS", str(7 * 24 * 3600 * 1000)))
    except ValueError as error:
        raise ValueError(f"COMPTOIR_EVENT_TOPIC_*: {error}") from None
    if partitions < 1 or replication_factor < 1:
        raise ValueError("COMPTOIR_EVENT_TOPIC_PARTITIONS and _REPLICATION_FACTOR must be at least 1")
    return TopicSpec(
        name,
        partitions=partitions,
        replication_factor=replication_factor,
        config={"retention.ms": str(retention_ms)},
    )


def catalog_topic_specs(service: str, base_dir: Path) -> list[TopicSpec]:
    """`event_topic_spec` of every topic whose event type `service` produces or consumes,
    as the event catalogue names them: `COMPTOIR_EVENT_CONTRACTS_DIR`/catalog.json, else
    the first `contracts/events/catalog.json` above `base_dir`. None without a catalogue."""
    configured = os.environ.get("COMPTOIR_EVENT_CONTRACTS_DIR")
    folders = (
        [Path(configured)]
        if configured
        else [folder / "contracts" / "events" for folder in [base_dir, *base_dir.parents]]
    )
    for folder in folders:
        catalog = folder / "catalog.json"
        if catalog.is_file():
            entries = json.loads(catalog.read_text())["event_types"].values()
            return [
                event_topic_spec(name)
                for name in sorted(
                    {
                        str(entry["topic"])
                        for entry in entries
                        if entry.get("producer") == service or service in entry.get("consumers", [])
                    }
                )
            ]
    return []


def ensure_topics(
    topics: Iterable[TopicSpec], *, bootstrap_servers: str, timeout_s: float = 30.0
) -> list[str]:
    """Creates the topics that do not exist yet; returns the names it created."""
    wanted = {spec.name: spec for spec in topics}
    if not wanted:
        return []
    admin = AdminClient(kafka_client_config(bootstrap_servers, log_level=0))
    cluster = admin.list_topics(timeout=timeout_s)
    missing = [spec for name, spec in wanted.items() if name not in cluster.topics]
    if not missing:
        return []
    brokers = len(cluster.brokers)
    for spec in missing:
        if spec.replication_factor > brokers:
            raise ValueError(
                f"Kafka topic {spec.name}: replication factor {spec.replication_factor} exceeds the "
                f"{brokers} broker(s) of the cluster at {bootstrap_servers} "
                "(COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR, or the TopicSpec's replication_factor)"
            )
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
