"""A real `python -m devstack.otlp_sink` process per test, and OTLP export requests to send it."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = re.compile(r"OTLP/HTTP on [\d.]+:(\d+), query on [\d.]+:(\d+)")
START_DEADLINE_S = 15.0
STOP_DEADLINE_S = 15.0


@dataclass
class Sink:
    """One sink process on ports of its own; its output is kept for the failure messages."""

    process: subprocess.Popen[str]
    started_at: float
    output: list[str] = field(default_factory=list)
    otlp_url: str = ""
    query_url: str = ""
    ready_after_s: float = 0.0
    # One keep-alive client, as the exporters and the console use the sink.
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def log(self) -> str:
        return "".join(self.output)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"{self.query_url}{path}", params=params)

    def post(
        self, body: bytes, content_type: str = "application/x-protobuf", **headers: str
    ) -> httpx.Response:
        return self.client.post(
            f"{self.otlp_url}/v1/traces", content=body, headers={"Content-Type": content_type, **headers}
        )

    def export(self, request: ExportTraceServiceRequest) -> None:
        response = self.post(request.SerializeToString())
        assert response.status_code == 200, response.text

    def stats(self) -> dict[str, Any]:
        response = self.get("/")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def stop(self) -> int:
        """SIGTERM, as the devstack stops it; the exit code."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=STOP_DEADLINE_S)


def _start(store: Path, *args: str) -> Sink:
    any_ports = ["--otlp-port", "0", "--query-port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.otlp_sink", *any_ports, "--store", str(store), *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sink = Sink(process=process, started_at=time.monotonic())
    ports = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            sink.output.append(line)
            found = READY_LINE.search(line)
            if found:
                sink.otlp_url = f"http://127.0.0.1:{found[1]}"
                sink.query_url = f"http://127.0.0.1:{found[2]}"
                ports.set()

    threading.Thread(target=read, daemon=True).start()
    if not ports.wait(START_DEADLINE_S):
        sink.stop()
        raise AssertionError(f"the sink did not start within {START_DEADLINE_S} s:\n{sink.log()}")
    wait_for(lambda: sink.get("/api/services").status_code == 200, what="the sink's readiness query")
    sink.ready_after_s = time.monotonic() - sink.started_at
    return sink


def wait_for(check: Callable[[], bool], *, what: str, timeout_s: float = START_DEADLINE_S) -> None:
    """Polls `check` until it holds; fails naming `what` after `timeout_s`."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not after {timeout_s} s")
        time.sleep(0.05)


SinkFactory = Callable[..., Sink]


def _stop(sink: Sink) -> None:
    code = sink.stop()
    if sink.process.stdout is not None:
        sink.process.stdout.close()
    assert code == 0, f"the sink exited with {code}:\n{sink.log()}"


@pytest.fixture
def start_sink(tmp_path: Path) -> Iterator[SinkFactory]:
    """Starts sinks (`start_sink(*flags, store=path)`); each must stop cleanly on SIGTERM."""
    started: list[Sink] = []

    def start(*args: str, store: Path | None = None) -> Sink:
        sink = _start(store or tmp_path / "spans.sqlite", *args)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        _stop(sink)


@pytest.fixture
def sink(start_sink: SinkFactory) -> Sink:
    """A sink with an empty store of its own."""
    return start_sink()


@pytest.fixture(scope="module")
def idle_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sink]:
    """One empty sink for the tests that send it nothing (refused queries, unknown routes)."""
    sink = _start(tmp_path_factory.mktemp("idle") / "spans.sqlite")
    yield sink
    _stop(sink)


# --- OTLP export requests -----------------------------------------------------


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in values.items()]


def span(
    trace_id: str,
    span_id: str,
    name: str,
    *,
    start_ns: int,
    duration_ns: int,
    parent_id: str = "",
    kind: Span.SpanKind.ValueType = Span.SPAN_KIND_INTERNAL,
    error: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> Span:
    """One OTLP span; `error` is the status message of a span whose status is ERROR."""
    return Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent_id),
        name=name,
        kind=kind,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ns,
        attributes=attributes(attrs or {}),
        status=Status(code=Status.STATUS_CODE_ERROR, message=error) if error is not None else Status(),
    )


def export_request(by_service: dict[str, Sequence[Span]], scope: str = "tests") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attributes({"service.name": service})),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope), spans=list(spans))],
            )
            for service, spans in by_service.items()
        ]
    )


def trace_id_of(n: int, prefix: int = 0xA) -> str:
    return f"{prefix:x}{n:031x}"


def span_id_of(n: int) -> str:
    return f"{n + 1:016x}"
