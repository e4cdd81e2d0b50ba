"""The envelope every event travels in (`contracts/envelope.json`), its JSON form
(the Kafka value) and its Kafka headers.

The headers repeat the routing and tracing fields so tools and brokers can read
them without parsing the value; the value stays the source of truth.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
FIELDS = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "producer",
    "aggregate_id",
    "correlation_id",
    "saga_id",
    "traceparent",
    "payload",
)


class EnvelopeError(ValueError):
    """Bytes that are not a well-formed envelope."""


@dataclass(frozen=True)
class Envelope:
    """One event: identity, type and version, origin, ordering key, context, payload."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: datetime
    producer: str
    aggregate_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    saga_id: str | None = None
    traceparent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at.isoformat(),
            "producer": self.producer,
            "aggregate_id": self.aggregate_id,
            "correlation_id": self.correlation_id,
            "saga_id": self.saga_id,
            "traceparent": self.traceparent,
            "payload": self.payload,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("event_id", str(self.event_id).encode()),
            ("event_type", self.event_type.encode()),
            ("schema_version", str(self.schema_version).encode()),
            ("producer", self.producer.encode()),
            ("content-type", b"application/json"),
        ]
        for name in ("correlation_id", "saga_id", "traceparent"):
            value = getattr(self, name)
            if value:
                headers.append((name, value.encode()))
        return headers

    @classmethod
    def from_json(cls, data: bytes | str | None) -> Envelope:
        """Parses and checks an envelope; EnvelopeError says what is wrong."""
        if data is None:
            raise EnvelopeError("empty message value")
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise EnvelopeError(f"value is not JSON: {error}") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> Envelope:
        if not isinstance(raw, dict):
            raise EnvelopeError("envelope is not a JSON object")
        missing = [name for name in FIELDS if name not in raw]
        unknown = sorted(set(raw) - set(FIELDS))
        if missing or unknown:
            raise EnvelopeError(f"envelope fields: missing {missing}, unknown {unknown}")
        try:
            event_id = uuid.UUID(str(raw["event_id"]))
            occurred_at = datetime.fromisoformat(str(raw["occurred_at"]))
        except ValueError as error:
            raise EnvelopeError(f"envelope field: {error}") from None
        if occurred_at.tzinfo is None:
            raise EnvelopeError("occurred_at has no time zone")
        event_type, version = raw["event_type"], raw["schema_version"]
        if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type):
            raise EnvelopeError(f"event_type {event_type!r} is not <domain>.<event>")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise EnvelopeError(f"schema_version {version!r} is not a positive integer")
        for name in ("producer", "aggregate_id"):
            if not isinstance(raw[name], str) or not raw[name]:
                raise EnvelopeError(f"{name} must be a non-empty string")
        for name in ("correlation_id", "saga_id", "traceparent"):
            if raw[name] is not None and not isinstance(raw[name], str):
                raise EnvelopeError(f"{name} must be a string or null")
        if raw["traceparent"] is not None and not _TRACEPARENT.match(raw["traceparent"]):
            raise EnvelopeError("traceparent is not a W3C traceparent")
        if not isinstance(raw["payload"], dict):
            raise EnvelopeError("payload is not a JSON object")
        return cls(
            event_id=event_id,
            event_type=event_type,
            schema_version=version,
            occurred_at=occurred_at,
            producer=raw["producer"],
            aggregate_id=raw["aggregate_id"],
            payload=raw["payload"],
            correlation_id=raw["correlation_id"],
            saga_id=raw["saga_id"],
            traceparent=raw["traceparent"],
        )
