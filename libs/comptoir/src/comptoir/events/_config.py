"""Event settings: `settings.COMPTOIR_EVENTS` (a dict, every key optional) over
environment variables over defaults that suit the local devstack.

Keys: RETRY_DELAYS (seconds, one retry topic each), TOPIC_PARTITIONS,
TOPIC_REPLICATION_FACTOR (of the topics the service creates; at most the broker
count), TOPIC_RETENTION_MS, DLQ_RETENTION_MS, RELAY_BATCH_SIZE, RELAY_POLL_INTERVAL,
OUTBOX_RETENTION (seconds a sent row is kept), OUTBOX_MAX_ATTEMPTS (publishes the
broker refuses for good before a row is quarantined), INBOX_RETENTION (seconds),
CONSUMER_BATCH_SIZE, CONSUMER_COMMIT_INTERVAL_MS (how often the consumer commits the
offsets it has handled to the broker; a crash redelivers at most that much, which
the inbox skips), CONSUMER_LINGER_MS (how long the broker may hold a fetch to
gather more messages for the consumer: 0, the default, answers on the first
message; a consumer whose events are on nobody's critical path, such as the
mails, trades that delay for fewer, larger batches), TOPICS (event type ->
topic, overriding the catalogue),
PRODUCERS (event type -> the service its consumers accept it from, overriding
the catalogue's owner).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class EventSettings:
    service: str
    bootstrap_servers: str
    retry_delays: tuple[float, ...] = (1.0, 10.0, 60.0)
    topic_partitions: int = 3
    topic_replication_factor: int = 1
    topic_retention_ms: int = 7 * DAY_MS
    dlq_retention_ms: int = 30 * DAY_MS
    relay_batch_size: int = 500
    relay_poll_interval: float = 1.0
    outbox_retention: float = 3600.0
    outbox_max_attempts: int = 5
    inbox_retention: float = 30 * 24 * 3600.0
    consumer_batch_size: int = 500
    consumer_linger_ms: int = 0
    consumer_commit_interval_ms: int = 1000
    topics: dict[str, str] = field(default_factory=dict)


def _env_delays() -> tuple[float, ...] | None:
    raw = os.environ.get("COMPTOIR_EVENT_RETRY_DELAYS")
    if raw is None:
        return None
    return tuple(float(part) for part in raw.split(",") if part.strip())


def event_settings() -> EventSettings:
    """The settings in force now (read on each call, so test overrides apply)."""
    configured: dict[str, Any] = dict(getattr(settings, "COMPTOIR_EVENTS", {}))
    defaults = EventSettings(service="", bootstrap_servers="")
    delays = configured.get("RETRY_DELAYS", _env_delays() or defaults.retry_delays)

    def number(key: str, default: float) -> Any:
        value = configured.get(key, os.environ.get(f"COMPTOIR_EVENT_{key}", default))
        return type(default)(value)

    return EventSettings(
        service=settings.COMPTOIR["SERVICE_NAME"],
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        retry_delays=tuple(float(delay) for delay in delays),
        topic_partitions=number("TOPIC_PARTITIONS", defaults.topic_partitions),
        topic_replication_factor=number("TOPIC_REPLICATION_FACTOR", defaults.topic_replication_factor),
        topic_retention_ms=number("TOPIC_RETENTION_MS", defaults.topic_retention_ms),
        dlq_retention_ms=number("DLQ_RETENTION_MS", defaults.dlq_retention_ms),
        relay_batch_size=number("RELAY_BATCH_SIZE", defaults.relay_batch_size),
        relay_poll_interval=number("RELAY_POLL_INTERVAL", defaults.relay_poll_interval),
        outbox_retention=number("OUTBOX_RETENTION", defaults.outbox_retention),
        outbox_max_attempts=number("OUTBOX_MAX_ATTEMPTS", defaults.outbox_max_attempts),
        inbox_retention=number("INBOX_RETENTION", defaults.inbox_retention),
        consumer_batch_size=number("CONSUMER_BATCH_SIZE", defaults.consumer_batch_size),
        consumer_linger_ms=number("CONSUMER_LINGER_MS", defaults.consumer_linger_ms),
        consumer_commit_interval_ms=number(
            "CONSUMER_COMMIT_INTERVAL_MS", defaults.consumer_commit_interval_ms
        ),
        topics=dict(configured.get("TOPICS", {})),
    )
