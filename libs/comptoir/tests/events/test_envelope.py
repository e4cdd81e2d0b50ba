"""The envelope's JSON form, its checks, and its agreement with contracts/envelope.json."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from comptoir.events import Envelope, EnvelopeError

REPO_ROOT = Path(__file__).resolve().parents[4]


def make_envelope() -> Envelope:
    return Envelope(
        event_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        event_type="order.created",
        schema_version=1,
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        producer="order_service",
        aggregate_id="order-1",
        payload={"amount": "10.00"},
        correlation_id="corr-1",
        saga_id=None,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def test_round_trip_through_json() -> None:
    envelope = make_envelope()
    assert envelope.to_json() == (
        b'{"event_id":"12345678-1234-5678-1234-567812345678","event_type":"order.created",'
        b'"schema_version":1,"occurred_at":"2026-01-02T03:04:05+00:00","producer":"order_service",'
        b'"aggregate_id":"order-1","correlation_id":"corr-1","saga_id":null,'
        b'"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",'
        b'"payload":{"amount":"10.00"}}'
    )
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_headers_carry_identity_and_context() -> None:
    assert make_envelope().kafka_headers() == [
        ("event_id", b"12345678-1234-5678-1234-567812345678"),
        ("event_type", b"order.created"),
        ("schema_version", b"1"),
        ("producer", b"order_service"),
        ("content-type", b"application/json"),
        ("correlation_id", b"corr-1"),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]


def test_the_published_envelope_schema_accepts_what_the_code_writes() -> None:
    schema = json.loads((REPO_ROOT / "contracts" / "envelope.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert list(Draft202012Validator(schema).iter_errors(make_envelope().to_dict())) == []
    assert sorted(schema["required"]) == sorted(make_envelope().to_dict())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("producer"), "envelope fields: missing ['producer'], unknown []"),
        (lambda d: d.update(extra=1), "envelope fields: missing [], unknown ['extra']"),
        (lambda d: d.update(event_id="nope"), "envelope field: badly formed hexadecimal UUID string"),
        (lambda d: d.update(event_type="Order"), "event_type 'Order' is not <domain>.<event>"),
        (lambda d: d.update(schema_version=0), "schema_version 0 is not a positive integer"),
        (lambda d: d.update(occurred_at="2026-01-02T03:04:05"), "occurred_at has no time zone"),
        (lambda d: d.update(traceparent="x"), "traceparent is not a W3C traceparent"),
        (lambda d: d.update(payload=[]), "payload is not a JSON object"),
    ],
)
def test_malformed_envelopes_are_refused(mutate: object, message: str) -> None:
    raw = make_envelope().to_dict()
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(EnvelopeError) as caught:
        Envelope.from_json(json.dumps(raw))
    assert str(caught.value) == message


def test_non_json_is_refused() -> None:
    with pytest.raises(EnvelopeError, match=r"^value is not JSON"):
        Envelope.from_json(b"\xff")
    with pytest.raises(EnvelopeError, match=r"^empty message value$"):
        Envelope.from_json(None)
