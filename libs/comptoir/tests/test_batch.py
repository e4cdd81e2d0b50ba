"""BatchedCalls against a real HTTP server on loopback: a lone call goes out
alone to the operation's route; calls made while one is in flight go together
as the next request to the batch route, and each caller reads the answer its
item got, as if it had been sent alone."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from comptoir import BatchedCalls, ServiceClient, ServiceTokenProvider, UpstreamError, UpstreamResponse

SINGLE, BATCH = "/charge/", "/charge/batch/"


class Provider:
    """The single route answers 201 with the item's order id (409 for order "refused");
    the batch route answers each item the same way, or `batch_status` for the whole batch.
    A request waits while `gate` is clear."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.batch_status = 200
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()
        provider = self

        def answer_item(item: dict[str, Any]) -> tuple[int, Any]:
            if item["order_id"] == "refused":
                return 409, {"error": {"code": "insufficient_funds", "message": "No.", "details": {}}}
            return 201, {"payment_id": f"pay-{item['order_id']}"}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                if self.path == "/token":
                    self._send(200, {"access_token": "tok", "expires_in": 300})
                    return
                provider.requests.append((self.path, body))
                provider.arrived.set()
                provider.gate.wait(timeout=10)
                if self.path == SINGLE:
                    self._send(*answer_item(body))
                elif self.path == BATCH and provider.batch_status != 200:
                    self._send(provider.batch_status, {"error": {"code": "x", "message": "", "details": {}}})
                elif self.path == BATCH:
                    answers = [answer_item(item) for item in body["items"]]
                    results = [{"status": status, "body": answer} for status, answer in answers]
                    self._send(200, {"results": results})
                else:
                    self._send(404, {})

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    yield server
    server.gate.set()
    server.server.shutdown()
    server.server.server_close()


def _calls(provider: Provider) -> BatchedCalls:
    client = ServiceClient(
        provider.url,
        token_provider=ServiceTokenProvider(f"{provider.url}/token", "order_service", "s3cret"),
        backoff_s=0.01,
        retries=0,
    )
    return BatchedCalls(lambda: client, SINGLE, BATCH, max_items=3)


def _held_then_batched(provider: Provider, calls: BatchedCalls, order_ids: list[str]) -> dict[str, Any]:
    """One call held in flight at the provider while `order_ids` are called from
    threads of their own; then released. Every call's answer (or error), by order id."""
    answers: dict[str, Any] = {}

    def call(order_id: str) -> None:
        try:
            answers[order_id] = calls.post({"order_id": order_id}, idempotency_key=order_id)
        except UpstreamError as error:
            answers[order_id] = error

    provider.gate.clear()
    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert provider.arrived.wait(timeout=5)
    threads = [threading.Thread(target=call, args=(order_id,)) for order_id in order_ids]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while calls.queued < len(order_ids) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert calls.queued == len(order_ids)
    provider.gate.set()
    for thread in [first, *threads]:
        thread.join(timeout=10)
    return answers


def _body(answer: UpstreamResponse) -> Any:
    return (answer.status_code, answer.json())


def test_a_lone_call_goes_alone_to_the_operations_route(provider: Provider) -> None:
    answer = _calls(provider).post({"order_id": "7"}, idempotency_key="7")

    assert _body(answer) == (201, {"payment_id": "pay-7"})
    assert provider.requests == [(SINGLE, {"order_id": "7"})]


def test_calls_made_while_one_is_in_flight_go_together_and_each_reads_its_own_answer(
    provider: Provider,
) -> None:
    calls = _calls(provider)
    answers = _held_then_batched(provider, calls, ["a", "refused", "b", "c", "d"])

    assert _body(answers["first"]) == (201, {"payment_id": "pay-first"})
    assert _body(answers["a"]) == (201, {"payment_id": "pay-a"})
    assert _body(answers["b"]) == (201, {"payment_id": "pay-b"})
    refused = answers["refused"]
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "insufficient_funds"
    # The one in flight alone; the five that waited in batches of at most max_items (3).
    assert provider.paths() == [SINGLE, BATCH, BATCH]
    batched = [item["order_id"] for _, body in provider.requests[1:] for item in body["items"]]
    assert sorted(batched) == ["a", "b", "c", "d", "refused"]
    assert [len(body["items"]) for _, body in provider.requests[1:]] == [3, 2]
    # Nothing left behind: the next lone call goes out alone again.
    assert calls.queued == 0
    assert _body(calls.post({"order_id": "8"})) == (201, {"payment_id": "pay-8"})
    assert provider.paths()[-1] == SINGLE


def test_an_answer_to_the_whole_batch_is_every_items_answer(provider: Provider) -> None:
    provider.batch_status = 403
    answers = _held_then_batched(provider, _calls(provider), ["a", "b"])

    assert answers["a"].status_code == answers["b"].status_code == 403
    assert answers["first"].status_code == 201


def test_a_provider_without_the_batch_route_gets_the_calls_one_by_one(provider: Provider) -> None:
    provider.batch_status = 404
    answers = _held_then_batched(provider, _calls(provider), ["a", "b"])

    assert _body(answers["a"]) == (201, {"payment_id": "pay-a"})
    assert _body(answers["b"]) == (201, {"payment_id": "pay-b"})
    assert provider.paths() == [SINGLE, BATCH, SINGLE, SINGLE]


def test_a_batch_that_gets_no_answer_fails_every_call_in_it() -> None:
    closed = ServiceClient("http://127.0.0.1:9", backoff_s=0.01, retries=0, authenticate=False)
    calls = BatchedCalls(lambda: closed, SINGLE, BATCH)

    with pytest.raises(UpstreamError) as error:
        calls.post({"order_id": "1"})

    assert error.value.status_code == 503
    assert calls.queued == 0


def test_a_failure_while_answering_a_batch_leaves_no_call_waiting_and_the_next_goes(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _calls(provider)
    monkeypatch.setattr(BatchedCalls, "_send", lambda self, batch: [])  # one answer short of each call

    with pytest.raises(ValueError, match="zip"):
        calls.post({"order_id": "1"})

    assert calls.queued == 0
    monkeypatch.undo()
    answers: list[UpstreamResponse] = []
    following = threading.Thread(target=lambda: answers.append(calls.post({"order_id": "2"})), daemon=True)
    following.start()
    following.join(timeout=10)  # it would wait for ever if the failed batch were still "in flight"
    assert [_body(answer) for answer in answers] == [(201, {"payment_id": "pay-2"})]
