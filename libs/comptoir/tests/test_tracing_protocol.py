"""The OTLP protocol of the traces comes from the standard variables; an unknown one is
refused with its name, and the exporter is built in the process that exports."""

from __future__ import annotations

import os

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from comptoir._tracing import (
    PerProcessExporter,
    UnsupportedProtocolError,
    otlp_protocol,
    otlp_span_exporter,
)


@pytest.fixture(autouse=True)
def no_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")


def test_http_protobuf_is_the_default() -> None:
    assert otlp_protocol() == "http/protobuf"
    assert isinstance(otlp_span_exporter(), HttpExporter)


def test_grpc_when_the_protocol_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    exporter = otlp_span_exporter()
    assert isinstance(exporter, GrpcExporter)
    exporter.shutdown()


def test_the_traces_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert otlp_protocol() == "http/protobuf"


def test_an_unsupported_protocol_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(UnsupportedProtocolError) as refused:
        otlp_protocol()
    assert str(refused.value) == (
        "OTEL_EXPORTER_OTLP_PROTOCOL='http/json': traces are exported over http/protobuf or grpc"
    )


class CountingExporter(SpanExporter):
    built: list[int] = []

    def __init__(self) -> None:
        CountingExporter.built.append(os.getpid())

    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def test_the_exporter_is_built_on_the_first_export_and_once_per_process() -> None:
    CountingExporter.built = []
    exporter = PerProcessExporter(CountingExporter)
    assert CountingExporter.built == []
    assert exporter.export([]) == SpanExportResult.SUCCESS
    assert exporter.export([]) == SpanExportResult.SUCCESS
    assert CountingExporter.built == [os.getpid()]

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # a forked worker builds its own
        exporter.export([])
        os.write(write, str(CountingExporter.built).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    built_in_child = os.read(read, 1000).decode()
    os.close(read)
    assert built_in_child == f"[{os.getpid()}, {child}]"
    assert CountingExporter.built == [os.getpid()]
