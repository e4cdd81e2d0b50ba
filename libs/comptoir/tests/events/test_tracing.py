"""One trace from a request through the outbox, the relay and a consumer, read back
from a real OTLP receiver process (the devstack's sink) that the relay and the
consumer export to."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsapp.models import HandledNote
from opentelemetry import trace

from comptoir.events import declare_topics, event_settings
from comptoir.events.testing import read_topic, wait_for
from events.metrics_support import free_port
from events.support import Spawner, headers_of, publish_notes

REPO_ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def otlp_sink(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(OTLP endpoint, query base URL) of a receiver process of its own."""
    otlp, query = free_port(), free_port()
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.otlp_sink",
            "--otlp-port",
            str(otlp),
            "--query-port",
            str(query),
            "--store",
            str(tmp_path / "spans.jsonl"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{query}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/services", timeout=1):  # noqa: S310
                return True
        except OSError:
            return False

    try:
        wait_for(up, timeout_s=20, what="the OTLP sink")
        yield f"http://127.0.0.1:{otlp}", base
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def _trace(base: str, trace_id: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{base}/api/traces/{trace_id}", timeout=5) as response:  # noqa: S310
            return dict(json.load(response)["data"][0])
    except OSError:
        return {"spans": []}


def test_trace_context_crosses_outbox_relay_and_kafka_to_the_consumer(
    spawner: Spawner, notes_topic: str, group_id: str, otlp_sink: tuple[str, str]
) -> None:
    endpoint, query = otlp_sink
    declare_topics([notes_topic], event_settings(), with_failure_topics=True)
    with trace.get_tracer("test").start_as_current_span("POST /api/notes/") as request_span:
        (envelope,) = publish_notes(1, keys=["n1"])
    request = request_span.get_span_context()
    trace_id = format(request.trace_id, "032x")
    # publish_event stored the request's context with the event.
    assert (envelope.traceparent or "")[:-3] == f"00-{trace_id}-{request.span_id:016x}"  # flags vary

    exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "COMPTOIR_TRACE_SQL": "true"}
    spawner.start("outbox_relay", **exporting)
    spawner.start("consume_events", "--group-id", group_id, **exporting)
    wait_for(lambda: HandledNote.objects.count() == 1, timeout_s=60, what="the note handled")

    def spans() -> list[dict[str, Any]]:
        return list(_trace(query, trace_id)["spans"])

    # The relay and the consumer export on their own schedules: wait for both spans.
    wanted = {f"{notes_topic} publish", f"{notes_topic} process"}
    wait_for(
        lambda: wanted <= {s["operationName"] for s in spans()},
        timeout_s=30,
        what="the relay's and the consumer's spans",
        interval_s=0.5,
    )
    found = {span["operationName"]: span for span in spans()}
    publish, process = found[f"{notes_topic} publish"], found[f"{notes_topic} process"]
    # relay span: child of the request; consumer span: child of the relay span.
    assert publish["references"][0]["spanID"] == f"{request.span_id:016x}"
    assert process["references"][0]["spanID"] == publish["spanID"]
    assert {s["traceID"] for s in found.values()} == {trace_id}
    tags = {t["key"]: t["value"] for t in process["tags"]}
    assert tags["messaging.consumer.group.name"] == group_id
    assert tags["span.kind"] == "consumer"
    # The handler's SQL (inbox row, HandledNote insert) is traced under the consumer span.
    inserts = [s for s in spans() if s["operationName"] == "INSERT"]
    assert any(s["references"][0]["spanID"] == process["spanID"] for s in inserts)
    # The Kafka message carries the relay's context in its header.
    (message,) = read_topic(notes_topic)
    headers = dict(headers_of(message))
    assert headers["traceparent"][:-3] == f"00-{trace_id}-{publish['spanID']}"
