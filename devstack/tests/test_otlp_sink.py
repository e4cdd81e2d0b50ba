"""The sink's OTLP receiver and its Jaeger query API, against a real sink process."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from devstack.otlp_sink import normalize_trace_id, parse_duration_us

from .conftest import Sink, export_request, span, span_id_of, trace_id_of

BASE_NS = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000_000_000


def ok(body: Any) -> dict[str, Any]:
    return {"data": body, "total": len(body), "limit": 0, "offset": 0, "errors": None}


def failed(code: int, message: str) -> dict[str, Any]:
    return {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": code, "msg": message}]}


def tag(key: str, value: Any) -> dict[str, Any]:
    kind = {bool: "bool", int: "int64", float: "float64", str: "string"}[type(value)]
    return {"key": key, "type": kind, "value": value}


# --- one trace by id ----------------------------------------------------------

ORDER_TRACE = trace_id_of(1)


def send_order_trace(sink: Sink) -> None:
    gateway = span(
        ORDER_TRACE,
        span_id_of(1),
        "GET /api/orders/",
        start_ns=BASE_NS,
        duration_ns=30 * MS,
        kind=Span.SPAN_KIND_SERVER,
        attrs={"http.method": "GET", "http.status_code": 200, "retried": False, "ratio": 0.5},
    )
    create = span(
        ORDER_TRACE,
        span_id_of(2),
        "orders.create",
        parent_id=span_id_of(1),
        start_ns=BASE_NS + 1 * MS,
        duration_ns=20 * MS,
        error="card declined",
        attrs={"order.id": "o-1"},
    )
    create.events.add(time_unix_nano=BASE_NS + 2 * MS, name="exception").attributes.add(
        key="exception.type"
    ).value.string_value = "CardDeclined"
    query = span(
        ORDER_TRACE,
        span_id_of(3),
        "SELECT",
        parent_id=span_id_of(2),
        start_ns=BASE_NS + 3 * MS,
        duration_ns=1 * MS + 500,
        kind=Span.SPAN_KIND_CLIENT,
    )
    # Spans arrive out of order and in several exports, as the services send them.
    sink.export(export_request({"order_service": [query, create]}))
    sink.export(export_request({"api_gateway": [gateway]}, scope="gateway"))


def test_a_trace_by_id_comes_back_in_jaegers_shape_with_error_tags(sink: Sink) -> None:
    send_order_trace(sink)

    response = sink.get(f"/api/traces/{ORDER_TRACE}")

    assert response.status_code == 200
    child_of = [{"refType": "CHILD_OF", "traceID": ORDER_TRACE, "spanID": span_id_of(n)} for n in (1, 2)]
    assert response.json() == ok(
        [
            {
                "traceID": ORDER_TRACE,
                "spans": [
                    {
                        "traceID": ORDER_TRACE,
                        "spanID": span_id_of(1),
                        "operationName": "GET /api/orders/",
                        "references": [],
                        "startTime": BASE_NS // 1000,
                        "duration": 30_000,
                        "tags": [
                            tag("http.method", "GET"),
                            tag("http.status_code", 200),
                            tag("retried", False),
                            tag("ratio", 0.5),
                            tag("span.kind", "server"),
                            tag("otel.scope.name", "gateway"),
                        ],
                        "logs": [],
                        "processID": "p1",
                        "warnings": None,
                    },
                    {
                        "traceID": ORDER_TRACE,
                        "spanID": span_id_of(2),
                        "operationName": "orders.create",
                        "references": [child_of[0]],
                        "startTime": BASE_NS // 1000 + 1000,
                        "duration": 20_000,
                        "tags": [
                            tag("order.id", "o-1"),
                            tag("span.kind", "internal"),
                            tag("otel.scope.name", "tests"),
                            tag("otel.status_code", "ERROR"),
                            tag("error", True),
                            tag("otel.status_description", "card declined"),
                        ],
                        "logs": [
                            {
                                "timestamp": BASE_NS // 1000 + 2000,
                                "fields": [tag("event", "exception"), tag("exception.type", "CardDeclined")],
                            }
                        ],
                        "processID": "p2",
                        "warnings": None,
                    },
                    {
                        "traceID": ORDER_TRACE,
                        "spanID": span_id_of(3),
                        "operationName": "SELECT",
                        "references": [child_of[1]],
                        "startTime": BASE_NS // 1000 + 3000,
                        "duration": 1000,
                        "tags": [tag("span.kind", "client"), tag("otel.scope.name", "tests")],
                        "logs": [],
                        "processID": "p2",
                        "warnings": None,
                    },
                ],
                "processes": {
                    "p1": {"serviceName": "api_gateway", "tags": []},
                    "p2": {"serviceName": "order_service", "tags": []},
                },
                "warnings": None,
            }
        ]
    )
    # Jaeger's ids are case-insensitive and may lose their leading zeros.
    assert sink.get(f"/api/traces/{ORDER_TRACE.upper()}").json() == response.json()
    short = trace_id_of(7, prefix=0)
    sink.export(export_request({"x": [span(short, span_id_of(1), "x", start_ns=BASE_NS, duration_ns=MS)]}))
    assert sink.get(f"/api/traces/{short.lstrip('0')}").json()["data"][0]["traceID"] == short


def test_a_span_sent_twice_is_kept_once(sink: Sink) -> None:
    send_order_trace(sink)
    send_order_trace(sink)

    spans = sink.get(f"/api/traces/{ORDER_TRACE}").json()["data"][0]["spans"]

    assert [s["spanID"] for s in spans] == [span_id_of(1), span_id_of(2), span_id_of(3)]


def test_an_unknown_trace_or_route_is_a_404_in_jaegers_shape(idle_sink: Sink) -> None:
    response = idle_sink.get(f"/api/traces/{trace_id_of(99)}")
    assert (response.status_code, response.json()) == (404, failed(404, "trace not found"))

    response = idle_sink.get("/api/nothing")
    assert (response.status_code, response.json()) == (404, failed(404, "no such route: /api/nothing"))


def test_services_and_their_operations(sink: Sink) -> None:
    assert sink.get("/api/services").json() == ok([])
    send_order_trace(sink)

    assert sink.get("/api/services").json() == ok(["api_gateway", "order_service"])
    assert sink.get("/api/services/order_service/operations").json() == ok(["SELECT", "orders.create"])
    assert sink.get("/api/services/nobody/operations").json() == ok([])
    assert sink.get("/api/operations", service="order_service").json() == ok(
        [{"name": "SELECT", "spanKind": "client"}, {"name": "orders.create", "spanKind": "internal"}]
    )
    assert sink.get("/api/operations", service="order_service", spanKind="client").json() == ok(
        [{"name": "SELECT", "spanKind": "client"}]
    )


# --- search -------------------------------------------------------------------


def send_orders(sink: Sink, count: int) -> None:
    """Order n: a server span at BASE + n s lasting n ms; every fifth also a failed charge."""
    spans = []
    for n in range(1, count + 1):
        failing = n % 5 == 0
        spans.append(
            span(
                trace_id_of(n),
                span_id_of(1),
                "POST /api/orders/",
                start_ns=BASE_NS + n * S,
                duration_ns=n * MS,
                kind=Span.SPAN_KIND_SERVER,
                attrs={"customer": f"c{n % 2}", "http.status_code": 402 if failing else 201},
            )
        )
        if failing:
            spans.append(
                span(
                    trace_id_of(n),
                    span_id_of(2),
                    "charge",
                    parent_id=span_id_of(1),
                    start_ns=BASE_NS + n * S + MS,
                    duration_ns=MS,
                    kind=Span.SPAN_KIND_CLIENT,
                    error="declined",
                )
            )
    sink.export(export_request({"order_service": spans}))


def found(sink: Sink, **params: Any) -> list[int]:
    """The order numbers a search answers, in its order."""
    response = sink.get("/api/traces", **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["data"])
    return [int(trace["traceID"], 16) - (0xA << 124) for trace in body["data"]]


def test_search_answers_the_newest_matching_traces_first(sink: Sink) -> None:
    send_orders(sink, 25)
    service = {"service": "order_service"}

    assert found(sink, **service) == list(range(25, 5, -1))  # 20 by default
    assert found(sink, **service, limit=3) == [25, 24, 23]
    assert found(sink, **service, limit=100, operation="charge") == [25, 20, 15, 10, 5]
    assert found(sink, **service, limit=100, tags='{"error":"true"}') == [25, 20, 15, 10, 5]
    assert found(sink, **service, limit=100, tags='{"http.status_code":"402"}') == [25, 20, 15, 10, 5]
    assert found(sink, **service, limit=100, tags='{"customer":"c1","http.status_code":"402"}') == [25, 15, 5]
    # Every tag on one span, as Jaeger matches: the failed charges carry no customer.
    assert found(sink, **service, limit=100, tags='{"customer":"c1","error":"true"}') == []
    assert found(sink, **service, limit=100, tag="customer:c0") == list(range(24, 0, -2))
    assert found(sink, **service, limit=100, tags='{"customer":"c9"}') == []
    assert found(sink, **service, operation="POST /api/orders/", minDuration="10ms", maxDuration="12ms") == [
        12,
        11,
        10,
    ]
    assert found(sink, **service, minDuration="20500us") == [25, 24, 23, 22, 21]
    assert found(sink, **service, minDuration="0.0235s") == [25, 24]
    assert found(sink, **service, minDuration="1.5s") == []
    start_us, end_us = (BASE_NS + 3 * S) // 1000, (BASE_NS + 7 * S) // 1000
    assert found(sink, **service, start=start_us, end=end_us) == [7, 6, 5, 4, 3]
    assert found(sink, service="nobody") == []
    # The traces come whole: the charge of order 25 with its server span.
    (trace,) = sink.get("/api/traces", **service, operation="charge", limit=1).json()["data"]
    assert [s["operationName"] for s in trace["spans"]] == ["POST /api/orders/", "charge"]
    # Jaeger's traceID parameter: those traces, whatever the other parameters say.
    assert found(sink, traceID=[trace_id_of(3), trace_id_of(4), trace_id_of(99)]) == [3, 4]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "parameter 'service' is required"),
        ({"service": "s", "limit": "many"}, "unable to parse param 'limit': 'many' is not a number"),
        ({"service": "s", "limit": "-1"}, "unable to parse param 'limit': '-1' is negative"),
        (
            {"service": "s", "start": "yesterday"},
            "unable to parse param 'start': 'yesterday' is not a time in microseconds",
        ),
        ({"service": "s", "end": "-5"}, "unable to parse param 'end': '-5' is negative"),
        ({"service": "s", "start": "10", "end": "5"}, "'start' is after 'end'"),
        (
            {"service": "s", "minDuration": "10"},
            "unable to parse param 'minDuration': '10' is not a duration such as 10ms, 1.5s or 300us",
        ),
        (
            {"service": "s", "maxDuration": "10parsecs"},
            "unable to parse param 'maxDuration': '10parsecs' is not a duration such as 10ms, 1.5s or 300us",
        ),
        (
            {"service": "s", "minDuration": "2s", "maxDuration": "1s"},
            "'maxDuration' should be greater than 'minDuration'",
        ),
        (
            {"service": "s", "tags": "{bad"},
            "malformed 'tags' parameter '{bad': expected a JSON object such as {\"error\":\"true\"}",
        ),
        (
            {"service": "s", "tags": '["error"]'},
            'malformed \'tags\' parameter \'["error"]\': expected a JSON object such as {"error":"true"}',
        ),
        ({"service": "s", "tag": "error"}, "malformed 'tag' parameter 'error': expected key:value"),
        ({"traceID": "xyz"}, "cannot parse traceID 'xyz': expected up to 32 hexadecimal digits"),
    ],
)
def test_bad_search_parameters_answer_400_in_jaegers_shape(
    idle_sink: Sink, params: dict[str, str], message: str
) -> None:
    response = idle_sink.get("/api/traces", **params)

    assert (response.status_code, response.json()) == (400, failed(400, message))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/traces/not-hex", "cannot parse traceID 'not-hex': expected up to 32 hexadecimal digits"),
        (
            f"/api/traces/{'a' * 33}",
            f"cannot parse traceID '{'a' * 33}': expected up to 32 hexadecimal digits",
        ),
        ("/api/operations", "parameter 'service' is required"),
    ],
)
def test_bad_paths_answer_400_in_jaegers_shape(idle_sink: Sink, path: str, message: str) -> None:
    response = idle_sink.get(path)

    assert (response.status_code, response.json()) == (400, failed(400, message))


# --- what the receiver accepts ------------------------------------------------


def test_otlp_json_with_hex_ids_and_gzipped_protobuf_are_received(sink: Sink) -> None:
    json_trace, gzip_trace = trace_id_of(1, prefix=0xB), trace_id_of(2, prefix=0xB)
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json_service"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": json_trace,
                                "spanId": span_id_of(1),
                                "name": "from json",
                                "kind": 2,
                                "startTimeUnixNano": str(BASE_NS),
                                "endTimeUnixNano": str(BASE_NS + 5 * MS),
                                "status": {"code": 2, "message": "boom"},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = sink.post(json.dumps(body).encode(), "application/json")
    assert (response.status_code, response.content) == (200, b"{}")
    gzipped = export_request(
        {"gzip_service": [span(gzip_trace, span_id_of(1), "gz", start_ns=BASE_NS, duration_ns=MS)]}
    )
    response = sink.post(gzip.compress(gzipped.SerializeToString()), **{"Content-Encoding": "gzip"})
    assert response.status_code == 200

    (from_json,) = sink.get(f"/api/traces/{json_trace}").json()["data"][0]["spans"]
    assert (from_json["operationName"], from_json["duration"]) == ("from json", 5000)
    assert tag("error", True) in from_json["tags"]
    assert tag("otel.status_description", "boom") in from_json["tags"]
    (from_gzip,) = sink.get(f"/api/traces/{gzip_trace}").json()["data"][0]["spans"]
    assert from_gzip["operationName"] == "gz"
    assert sink.get("/api/services").json() == ok(["gzip_service", "json_service"])


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\xff\xff\xff not protobuf", {}),
        (b"not gzip", {"Content-Encoding": "gzip"}),
        (b'{"resourceSpans": 3}', {"Content-Type": "application/json"}),
        (b"{not json", {"Content-Type": "application/json"}),
    ],
)
def test_a_body_that_is_no_export_request_is_a_400_and_stores_nothing(
    sink: Sink, body: bytes, headers: dict[str, str]
) -> None:
    response = sink.post(body, **headers)

    assert response.status_code == 400
    assert response.text.startswith("not an OTLP export request: ")
    assert {key: sink.stats()[key] for key in ("traces", "spans")} == {"traces": 0, "spans": 0}
    assert sink.get("/api/services").json() == ok([])


def test_only_the_traces_path_is_received(sink: Sink) -> None:
    request = export_request(
        {"s": [span(trace_id_of(1), span_id_of(1), "x", start_ns=BASE_NS, duration_ns=1)]}
    )
    response = httpx.post(
        f"{sink.otlp_url}/v1/metrics",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )

    assert response.status_code == 404
    assert sink.stats()["traces"] == 0


# --- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "microseconds"),
    [
        ("0", 0),
        ("300us", 300),
        ("300µs", 300),
        ("10ms", 10_000),
        ("1.5s", 1_500_000),
        ("1m30s", 90_000_000),
        ("2h", 7_200_000_000),
        ("1500ns", 1),
        (".5ms", 500),
    ],
)
def test_durations_are_read_as_go_writes_them(text: str, microseconds: int) -> None:
    assert parse_duration_us(text) == microseconds


@pytest.mark.parametrize("text", ["", "10", "ms", "1.5 s", "-1s", "1d"])
def test_durations_without_a_known_unit_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration_us(text)


def test_trace_ids_are_padded_and_lower_cased() -> None:
    assert normalize_trace_id("ABC") == "0" * 29 + "abc"


def test_concurrent_exports_and_queries_all_land(sink: Sink) -> None:
    def client_work(worker: int) -> list[int]:
        statuses = []
        with httpx.Client(timeout=30) as client:
            for n in range(20):
                trace_id = trace_id_of(worker * 100 + n, prefix=0xC)
                spans = [
                    span(trace_id, span_id_of(s), f"step {s}", start_ns=BASE_NS + n * S + s, duration_ns=MS)
                    for s in range(10)
                ]
                body = export_request({f"service_{worker}": spans}).SerializeToString()
                posted = client.post(
                    f"{sink.otlp_url}/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf"},
                )
                read = client.get(f"{sink.query_url}/api/traces/{trace_id}")
                searched = client.get(f"{sink.query_url}/api/traces", params={"service": f"service_{worker}"})
                statuses += [posted.status_code, read.status_code, searched.status_code]
        return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for result in pool.map(client_work, range(8)) for status in result]

    assert statuses == [200] * 8 * 20 * 3
    assert {key: sink.stats()[key] for key in ("traces", "spans")} == {"traces": 160, "spans": 1600}
    assert sink.get("/api/services").json() == ok([f"service_{worker}" for worker in range(8)])
