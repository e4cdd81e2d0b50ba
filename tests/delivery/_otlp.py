"""A real OTLP trace receiver on 127.0.0.1 speaking one protocol: `grpc` (the OTLP
TraceService over HTTP/2) or `http/protobuf` (POST /v1/traces), keeping what it receives."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str


@dataclass
class Receiver:
    protocol: str
    port: int = 0
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            self.requests += 1
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            ReceivedSpan(attributes.get("service.name", ""), span.name, span.trace_id.hex())
                        )

    def wait_for_trace(self, trace_id: str, timeout_s: float = 30.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = [span for span in self.spans if span.trace_id == trace_id]
            if found:
                return found
            time.sleep(0.1)
        return []


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self.receiver.keep(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def _http_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_error(404)
                return
            receiver.keep(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def otlp_receiver(protocol: str) -> Iterator[Receiver]:
    receiver = Receiver(protocol)
    if protocol == "grpc":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(receiver), server)
        receiver.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield receiver
        finally:
            server.stop(grace=None)
    elif protocol == "http/protobuf":
        http = ThreadingHTTPServer(("127.0.0.1", 0), _http_handler(receiver))
        receiver.port = http.server_address[1]
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        try:
            yield receiver
        finally:
            http.shutdown()
            http.server_close()
    else:
        raise ValueError(f"no OTLP receiver for protocol {protocol!r}")
