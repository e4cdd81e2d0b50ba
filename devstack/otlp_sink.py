"""A small OTLP/HTTP trace receiver for machines where Jaeger could not be built.

`POST /v1/traces` (protobuf or JSON, as the OpenTelemetry exporters send it)
on the OTLP port appends one JSON line per span to a file; the query port
answers the subset of Jaeger's HTTP API the tests and operators use:
`GET /api/services` and `GET /api/traces/<trace id>` (Jaeger's JSON shape:
`data[0].spans[*].{traceID, spanID, operationName, references, processID}` and
`data[0].processes[*].serviceName`).

    python -m devstack.otlp_sink --otlp-port 4318 --query-port 16686 --store spans.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_lock = threading.Lock()


def spans_of(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    found = []
    for resource_spans in request.resource_spans:
        attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        service = attributes.get("service.name", "unknown")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                raw = MessageToDict(span)
                found.append(
                    {
                        "traceID": span.trace_id.hex(),
                        "spanID": span.span_id.hex(),
                        "parentSpanID": span.parent_span_id.hex(),
                        "operationName": span.name,
                        "service": service,
                        "kind": raw.get("kind", ""),
                        "startTimeUnixNano": span.start_time_unix_nano,
                        "endTimeUnixNano": span.end_time_unix_nano,
                        "attributes": {
                            a["key"]: next(iter(a.get("value", {}).values()), None)
                            for a in raw.get("attributes", [])
                        },
                        "status": raw.get("status", {}),
                    }
                )
    return found


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def add(self, spans: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(span, separators=(",", ":")) + "\n" for span in spans)
        with _lock, self.path.open("a") as handle:
            handle.write(lines)

    def all(self) -> list[dict[str, Any]]:
        with _lock:
            text = self.path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def jaeger_trace(trace_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    services = sorted({span["service"] for span in spans})
    process_of = {service: f"p{n + 1}" for n, service in enumerate(services)}
    return {
        "traceID": trace_id,
        "spans": [
            {
                "traceID": span["traceID"],
                "spanID": span["spanID"],
                "operationName": span["operationName"],
                "references": (
                    [{"refType": "CHILD_OF", "traceID": span["traceID"], "spanID": span["parentSpanID"]}]
                    if span["parentSpanID"]
                    else []
                ),
                "startTime": span["startTimeUnixNano"] // 1000,
                "duration": (span["endTimeUnixNano"] - span["startTimeUnixNano"]) // 1000,
                "tags": [{"key": k, "value": v} for k, v in span["attributes"].items()]
                + [{"key": "span.kind", "value": span["kind"].removeprefix("SPAN_KIND_").lower()}],
                "processID": process_of[span["service"]],
            }
            for span in spans
        ],
        "processes": {pid: {"serviceName": service} for service, pid in process_of.items()},
    }


def make_otlp_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/traces":
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            if "json" in (self.headers.get("Content-Type") or ""):
                from google.protobuf.json_format import Parse

                Parse(body.decode(), request)
            else:
                request.ParseFromString(body)
            store.add(spans_of(request))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def make_query_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            spans = store.all()
            if path == "/api/services":
                self._json({"data": sorted({span["service"] for span in spans})})
            elif path.startswith("/api/traces/"):
                trace_id = path.rsplit("/", 1)[1].lower()
                mine = [span for span in spans if span["traceID"] == trace_id]
                if not mine:
                    self._json({"data": [], "errors": [{"code": 404, "msg": "trace not found"}]}, 404)
                else:
                    self._json({"data": [jaeger_trace(trace_id, mine)]})
            elif path in ("", "/"):
                self._json({"backend": "comptoir otlp sink", "spans": len(spans)})
            else:
                self.send_error(404)

        def _json(self, body: Any, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.otlp_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--otlp-port", type=int, default=4318)
    parser.add_argument("--query-port", type=int, default=16686)
    parser.add_argument("--store", type=Path, default=Path("spans.jsonl"))
    args = parser.parse_args(argv)
    store = Store(args.store)
    otlp = ThreadingHTTPServer((args.host, args.otlp_port), make_otlp_handler(store))
    query = ThreadingHTTPServer((args.host, args.query_port), make_query_handler(store))
    threading.Thread(target=otlp.serve_forever, daemon=True).start()
    where = f"OTLP/HTTP on {args.host}:{args.otlp_port}, query on {args.host}:{args.query_port}"
    print(f"otlp sink: {where}", flush=True)
    query.serve_forever()


if __name__ == "__main__":
    main()
