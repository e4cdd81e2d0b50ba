"""`publish_event`: the only way a service emits an event.

It validates the payload against its contract and writes an outbox row in the
caller's transaction, so the event exists if and only if the business change
commits. After the commit, a NOTIFY wakes the relay. It is sent in a
transaction of its own with `synchronous_commit` off: a NOTIFY inside the
business transaction would hold PostgreSQL's global notify lock through that
transaction's WAL flush and serialise every committing writer; a lost wake-up
only costs the relay's short poll.

The payload is serialised once (the same text is validated and spliced into the
envelope) and the outbox row is written with one plain INSERT: this runs in every
business transaction that emits an event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from comptoir import request_id_var

from ._context import current_delivery
from ._contracts import current_version, topic_for, validate_payload
from ._envelope import Envelope
from ._tracing import current_traceparent
from .models import OutboxMessage

NOTIFY_CHANNEL = "comptoir_outbox"
_NOTIFY = f"BEGIN; SET LOCAL synchronous_commit TO OFF; SELECT pg_notify('{NOTIFY_CHANNEL}', ''); COMMIT"
_NOTIFY_MARK = "comptoir_outbox_notify"
_INSERT_OUTBOX = (
    f"INSERT INTO {OutboxMessage._meta.db_table} "  # noqa: S608 - table name is ours
    "(event_id, event_type, topic, key, envelope, headers) VALUES (%s, %s, %s, %s, %s, %s::jsonb)"
)
_SEPARATORS = (",", ":")


class NotInTransactionError(RuntimeError):
    """publish_event was called outside transaction.atomic()."""


def publish_event(
    event_type: str,
    *,
    aggregate_id: str | int | uuid.UUID,
    payload: Mapping[str, Any],
    schema_version: int | None = None,
    correlation_id: str | None = None,
    saga_id: str | None = None,
    traceparent: str | None = None,
    topic: str | None = None,
    using: str = "default",
) -> Envelope:
    """Writes `event_type` for `aggregate_id` to the outbox inside the current transaction.

    Decimals, UUIDs and datetimes in `payload` are written as strings. The payload
    is validated against `contracts/events/<event_type>/<version>.json` (version:
    `schema_version`, else the catalogue's current one); a violation raises
    ContractError and writes nothing. Correlation id, saga id and traceparent
    default to those of the event being handled (in a handler), and the
    correlation id to the request id (in a request), else to the new event's id;
    the traceparent is the current OpenTelemetry span's when one is recording.
    """
    if not transaction.get_connection(using).in_atomic_block:
        raise NotInTransactionError("publish_event must be called inside transaction.atomic()")
    version = schema_version or current_version(event_type)
    payload_json = json.dumps(payload, cls=DjangoJSONEncoder, separators=_SEPARATORS, ensure_ascii=False)
    wire_payload = json.loads(payload_json)
    validate_payload(event_type, version, wire_payload)
    delivery = current_delivery()
    parent = delivery.event if delivery is not None else None
    event_id = uuid.uuid4()
    envelope = Envelope(
        event_id=event_id,
        event_type=event_type,
        schema_version=version,
        occurred_at=timezone.now(),
        producer=settings.COMPTOIR["SERVICE_NAME"],
        aggregate_id=str(aggregate_id),
        payload=wire_payload,
        correlation_id=correlation_id
        or (parent.correlation_id if parent else None)
        or request_id_var.get()
        or str(event_id),
        saga_id=saga_id or (parent.saga_id if parent else None),
        traceparent=traceparent or current_traceparent() or (parent.traceparent if parent else None),
    )
    _wake_relay_after_commit(using)
    headers = {name: value.decode() for name, value in envelope.kafka_headers()}
    with transaction.get_connection(using).cursor() as cursor:
        cursor.execute(
            _INSERT_OUTBOX,
            [
                event_id,
                event_type,
                topic or topic_for(event_type),
                envelope.aggregate_id,
                envelope_json(envelope, payload_json),
                json.dumps(headers, separators=_SEPARATORS, ensure_ascii=False),
            ],
        )
    return envelope


def envelope_json(envelope: Envelope, payload_json: str) -> str:
    """`envelope.to_json()`, with the payload's JSON text spliced in rather than encoded again."""
    fields = envelope.to_dict()
    del fields["payload"]  # the last field of the envelope's JSON form
    head = json.dumps(fields, separators=_SEPARATORS, ensure_ascii=False)
    return f'{head[:-1]},"payload":{payload_json}}}'


def _wake_relay_after_commit(using: str) -> None:
    """Registers one NOTIFY per transaction, sent after it commits (dropped on rollback)."""
    connection = transaction.get_connection(using)
    if any(getattr(callback, _NOTIFY_MARK, False) for _, callback, _ in connection.run_on_commit):
        return

    def notify() -> None:
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # Run inside an enclosing transaction (a test capturing on-commit
                # callbacks): never commit it; the NOTIFY goes out with it.
                cursor.execute(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")
            else:
                cursor.execute(_NOTIFY)

    setattr(notify, _NOTIFY_MARK, True)
    transaction.on_commit(notify, using=using, robust=True)
