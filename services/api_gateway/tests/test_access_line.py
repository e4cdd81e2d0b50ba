"""The access line is assembled by hand for speed: it must be, byte for byte, the line
ecs-logging's formatter writes for a record with the same fields."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import ecs_logging
import pytest

from gateway.observability import RequestContextFilter, access_line, logging_config

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _library_line(created: float, message: str, fields: dict[str, Any]) -> str:
    record = logging.LogRecord("gateway.access", logging.INFO, __file__, 0, message, None, None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.__dict__.update(fields)
    formatter = ecs_logging.StdlibFormatter(exclude_fields=["process", "log.origin", "log.original"])
    return formatter.format(record)


CASES = [
    pytest.param(
        {"user_id": "user:7", "error_code": None, "upstream": "order_service"},
        {"user.id": "user:7", "labels": {"route": "/api/orders/", "upstream": "order_service"}},
        id="authenticated",
    ),
    pytest.param(
        {"user_id": None, "error_code": "not_found", "upstream": None},
        {"error.code": "not_found", "labels": {"route": "/api/orders/"}},
        id="anonymous-error",
    ),
]


@pytest.mark.parametrize(("given", "fields"), CASES)
def test_the_access_line_is_the_one_ecs_logging_writes(given: dict[str, Any], fields: dict[str, Any]) -> None:
    created = 1_764_892_800.25
    line = access_line(
        request_id="req-1",
        method="GET",
        path='/api/orders/"x"/é',
        route="/api/orders/",
        upstream=given["upstream"],
        status=404 if given["error_code"] else 200,
        duration_ns=1_234_567,
        sent=42,
        client_ip="127.0.0.1",
        user_id=given["user_id"],
        error_code=given["error_code"],
        traceparent=TRACEPARENT,
        now=created,
    )
    status = 404 if given["error_code"] else 200
    expected = _library_line(
        created,
        f'GET /api/orders/"x"/é {status}',
        {
            "service.name": "api_gateway",
            "http.request.id": "req-1",
            "http.request.method": "GET",
            "url.path": '/api/orders/"x"/é',
            "http.response.status_code": status,
            "http.response.body.bytes": 42,
            "event.duration": 1_234_567,
            "client.ip": "127.0.0.1",
            "trace.id": "0af7651916cd43dd8448eb211c80319c",
            "span.id": "b7ad6b7169203331",
            **fields,
        },
    )

    assert line == expected
    assert json.loads(line)["@timestamp"] == "2025-12-05T00:00:00.250Z"


def test_other_records_carry_the_service_and_the_request_context() -> None:
    from gateway.context import current_request_id, current_traceparent

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    config = logging_config(logging.INFO)
    options = {key: value for key, value in config["formatters"]["ecs"].items() if key != "()"}
    handler.setFormatter(ecs_logging.StdlibFormatter(**options))
    handler.addFilter(RequestContextFilter())
    logger = logging.Logger("gateway.test")
    logger.addHandler(handler)
    request_token = current_request_id.set("req-9")
    trace_token = current_traceparent.set(TRACEPARENT)
    try:
        logger.warning("upstream slow")
    finally:
        current_traceparent.reset(trace_token)
        current_request_id.reset(request_token)
    logger.info("outside a request")

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["service"] == {"name": "api_gateway"}
    assert inside["http"] == {"request": {"id": "req-9"}}
    assert inside["trace"] == {"id": "0af7651916cd43dd8448eb211c80319c"}
    assert inside["span"] == {"id": "b7ad6b7169203331"}
    assert outside["service"] == {"name": "api_gateway"}
    assert "http" not in outside
    assert "trace" not in outside
