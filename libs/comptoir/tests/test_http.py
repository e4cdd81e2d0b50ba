"""ServiceClient against a real HTTP server on loopback: retries only when safe,
clear errors instead of hangs, identity and request id forwarded."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from urllib3 import HTTPHeaderDict

from comptoir import (
    ErrorBody,
    ServiceClient,
    ServiceTokenProvider,
    UpstreamError,
    UpstreamResponse,
    logging_config,
    parse_error_body,
    request_id_var,
    response_json,
    service_client,
)


class Upstream:
    """Answers with the scripted statuses in order (then 200), recording each request."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                upstream.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                time.sleep(upstream.delay_s)
                if self.path == "/token":
                    status, payload = (
                        200,
                        {"access_token": f"tok-{len(upstream.requests)}", "expires_in": 300},
                    )
                else:
                    status = upstream.script.pop(0) if upstream.script else 200
                    payload = {"ok": status == 200}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _client(upstream: Upstream, **kwargs: Any) -> ServiceClient:
    provider = ServiceTokenProvider(f"{upstream.url}/token", "order_service", "s3cret")
    return ServiceClient(upstream.url, token_provider=provider, backoff_s=0.01, **kwargs)


def test_get_is_retried_on_503_and_carries_token_and_request_id(upstream: Upstream) -> None:
    upstream.script = [503, 503]
    token = request_id_var.set("req-77")
    try:
        response = _client(upstream, retries=2).get("/internal/thing")
    finally:
        request_id_var.reset(token)
    assert response.status_code == 200
    calls = upstream.calls("/internal/thing")
    assert len(calls) == 3
    assert calls[0]["headers"]["Authorization"] == "Bearer tok-1"
    assert calls[0]["headers"]["X-Request-ID"] == "req-77"
    # The token was fetched once, with the client credentials.
    [token_call] = upstream.calls("/token")
    assert json.loads(token_call["body"]) == {"client_id": "order_service", "client_secret": "s3cret"}


def test_the_json_body_and_query_parameters_reach_the_upstream_as_sent(upstream: Upstream) -> None:
    client = ServiceClient(
        f"{upstream.url}/v1/",
        token_provider=ServiceTokenProvider(f"{upstream.url}/token", "order_service", "s3cret"),
    )
    posted = client.post("/internal/charge", json={"amount": "1.00", "note": "café"})
    listed = client.get("/internal/audit/", params={"order_id": ["a b", "c"], "limit": 2})
    assert (posted.status_code, posted.json(), listed.headers["content-type"]) == (
        200,
        {"ok": True},
        "application/json",
    )
    [charge] = upstream.calls("/v1/internal/charge")
    assert charge["headers"]["Content-Type"] == "application/json"
    assert json.loads(charge["body"]) == {"amount": "1.00", "note": "café"}
    assert upstream.calls("/v1/internal/audit/?order_id=a+b&order_id=c&limit=2")


def test_post_without_idempotency_key_is_not_retried(upstream: Upstream) -> None:
    upstream.script = [503]
    response = _client(upstream).post("/internal/charge", json={"amount": "1.00"})
    assert response.status_code == 503
    assert len(upstream.calls("/internal/charge")) == 1


def test_post_with_idempotency_key_is_retried_with_the_same_key(upstream: Upstream) -> None:
    upstream.script = [502]
    response = _client(upstream).post("/internal/charge", json={"amount": "1.00"}, idempotency_key="order-5")
    assert response.status_code == 200
    calls = upstream.calls("/internal/charge")
    assert [c["headers"]["Idempotency-Key"] for c in calls] == ["order-5", "order-5"]


def test_slow_upstream_becomes_a_504_upstream_error(upstream: Upstream) -> None:
    upstream.delay_s = 1.0
    began = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        _client(upstream, timeout_s=0.2, retries=0, authenticate=False).get("/slow")
    assert caught.value.status_code == 504
    assert time.monotonic() - began < 0.9


def test_refused_connection_becomes_a_503_upstream_error() -> None:
    client = ServiceClient("http://127.0.0.1:9", retries=1, backoff_s=0.01, authenticate=False)
    with pytest.raises(UpstreamError) as caught:
        client.get("/anything")
    assert caught.value.status_code == 503
    assert caught.value.code == "unavailable"


def test_an_upstream_error_names_the_service_never_its_address(upstream: Upstream) -> None:
    upstream.delay_s = 1.0
    slow = _client(upstream, timeout_s=0.2, retries=0, authenticate=False)
    slow.name = "product_service"
    refused = ServiceClient("http://127.0.0.1:9", retries=0, authenticate=False, name="payment_service")

    with pytest.raises(UpstreamError) as timed_out:
        slow.get("/internal/stock/reservations/")
    with pytest.raises(UpstreamError) as unreachable:
        refused.post("/internal/payments/charge/", json={})

    assert str(timed_out.value) == "product_service did not answer in time."
    assert str(unreachable.value) == "payment_service could not be reached."


def test_401_refreshes_the_service_token_once(upstream: Upstream) -> None:
    upstream.script = [401]
    response = _client(upstream).get("/internal/thing")
    assert response.status_code == 200
    assert len(upstream.calls("/token")) == 2
    first, second = upstream.calls("/internal/thing")
    assert first["headers"]["Authorization"] != second["headers"]["Authorization"]


def _answer(status: int, content: bytes) -> UpstreamResponse:
    return UpstreamResponse(status, HTTPHeaderDict({"Content-Type": "application/json"}), content)


def test_the_standard_error_body_is_parsed_from_an_answer() -> None:
    body = {"error": {"code": "insufficient_stock", "message": "Not enough.", "details": {"product_id": 3}}}
    error = parse_error_body(_answer(409, json.dumps(body).encode()))
    assert error == ErrorBody(code="insufficient_stock", message="Not enough.", details={"product_id": 3})


@pytest.mark.parametrize(
    "content",
    [b"<html>bad gateway</html>", b"[]", b'{"detail": "x"}', b'{"error": "x"}', b'{"error": {"code": 7}}'],
)
def test_an_answer_without_the_standard_error_body_has_none(content: bytes) -> None:
    assert parse_error_body(_answer(502, content)) is None
    assert response_json(_answer(200, b"not json")) is None


def test_service_client_is_built_from_settings_and_reused(upstream: Upstream, settings: Any) -> None:
    settings.SERVICE_TOKEN_URL = f"{upstream.url}/token"
    settings.EMAIL_SERVICE_URL = upstream.url
    settings.EMAIL_SERVICE_TIMEOUT_S = 0.5
    settings.UPSTREAM_RETRIES = 3
    client = service_client("email_service")
    assert client is service_client("email_service")  # one pool of connections per process
    assert (client.name, client.base_url, client.retries) == ("email_service", upstream.url, 3)
    upstream.script = [503, 503, 503]
    assert client.get("/internal/thing").status_code == 200  # retried three times
    assert len(upstream.calls("/internal/thing")) == 4
    upstream.delay_s = 1.0
    with pytest.raises(UpstreamError):
        client.post("/internal/slow")  # the setting's timeout, not the default 5 s
    settings.EMAIL_SERVICE_URL = f"{upstream.url}/"
    assert service_client("email_service") is not client  # a changed setting, a client of its own


def test_a_call_is_logged_by_the_side_that_answers_it_and_a_failed_one_by_the_caller(
    upstream: Upstream,
) -> None:
    logging.config.dictConfig(logging_config("order_service"))
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        assert _client(upstream).get("/internal/thing").status_code == 200
        answered = stream.getvalue()
        provider = ServiceTokenProvider(f"{upstream.url}/token", "order_service", "s3cret")
        nobody = ServiceClient("http://127.0.0.1:9", token_provider=provider, name="nobody", retries=0)
        with pytest.raises(UpstreamError):
            nobody.get("/x")
    finally:
        logging.config.dictConfig(logging_config("comptoir_chassis", "WARNING"))

    # No client line for an answered call: the
    # server's access line records it.
    assert answered == ""
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["log.level"], line["message"]) == ("warning", "upstream unreachable")
    assert line["upstream"] == "nobody"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The client spans the calls make, every one sampled."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from comptoir import _http

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(_http, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def test_each_attempt_is_a_client_span_whose_context_the_request_carries(
    upstream: Upstream, spans: Any
) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    upstream.script = [503]
    assert _client(upstream, retries=1).get("/internal/thing", params={"a": 1}).status_code == 200

    calls = upstream.calls("/internal/thing?a=1")
    made = [span for span in spans.get_finished_spans() if span.attributes["url.full"].endswith("?a=1")]
    assert [(span.name, span.kind) for span in made] == [("GET", SpanKind.CLIENT)] * 2
    assert [span.attributes["http.response.status_code"] for span in made] == [503, 200]
    assert [span.status.status_code for span in made] == [StatusCode.ERROR, StatusCode.UNSET]
    port = int(upstream.url.rsplit(":", 1)[1])
    assert made[1].attributes["url.full"] == f"{upstream.url}/internal/thing?a=1"
    assert (made[1].attributes["http.request.method"], made[1].attributes["server.port"]) == ("GET", port)
    for call, span in zip(calls, made, strict=True):
        assert call["headers"]["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
    # The token's fetch is a client span of its own.
    token_spans = [
        span for span in spans.get_finished_spans() if span.attributes["url.full"].endswith("/token")
    ]
    assert [span.name for span in token_spans] == ["POST"]


def test_a_call_that_gets_no_answer_is_an_error_span(spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    with pytest.raises(UpstreamError):
        ServiceClient("http://127.0.0.1:9", retries=0, authenticate=False).get("/x")
    [span] = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "NewConnectionError"
    assert "http.response.status_code" not in span.attributes
