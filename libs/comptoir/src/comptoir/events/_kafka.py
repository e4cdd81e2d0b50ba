"""What the relay, the consumer and the dead-letter tool share of Kafka: the idempotent
producer's configuration and the names of the headers a failed message carries."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from comptoir._kafka_security import kafka_client_config

DELIVERY_TIMEOUT_S = 30.0

# Headers of a message on a retry or dead-letter topic (see `_consumer`).
H_ORIGINAL_TOPIC = "x-original-topic"
H_ORIGINAL_PARTITION = "x-original-partition"
H_ORIGINAL_OFFSET = "x-original-offset"
H_ATTEMPTS = "x-attempts"
H_FIRST_FAILURE = "x-first-failure-at"
H_ERROR_TYPE = "x-error-type"
H_ERROR_MESSAGE = "x-error-message"
H_GROUP = "x-consumer-group"
H_DEAD_LETTERED = "x-dead-lettered-at"
H_REPLAYED_FROM = "x-replayed-from"


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer: `acks=all`, no reordering or duplicates on retry."""
    return {
        **kafka_client_config(bootstrap_servers),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
        "log_level": 3,
        **overrides,
    }


def header_pairs(message: Message) -> list[tuple[str, bytes]]:
    """The message's headers as (name, bytes) pairs, whatever form the client gave."""
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(name, value.encode() if isinstance(value, str) else value or b"") for name, value in items]
