"""Batch calls: several calls of one internal operation in one request.

A caller with several calls of the same operation waiting at once (the saga
worker's threads, each on its own order) sends them as one
`POST {"items": [...]}` to the operation's batch route; the provider answers
200 `{"results": [{"status": ..., "body": ...}, ...]}`, one result per item in
the same order, each the status and body the operation's own route would have
answered for that item alone: the item is validated and run on its own (its
own transaction, as its own request would be), a refusal rendered by the
chassis' exception handler. One item's refusal or failure never touches the
others.

What a batch saves is what every request pays around its work: the HTTP
exchange, gunicorn, the middleware (tracing, metrics, request id), the
authentication, the access line, on both sides. The work of each item is the
same.

Provider side, in a view whose permission is the operation's own:

    def post(self, request: Request) -> Response:
        return batch_response(request, self, _charge)  # _charge(item) -> Response

Caller side, `BatchedCalls` sends what its callers' threads ask while a call of
the operation is already on its way as the next request, together: a call
that finds nothing in flight goes out at once, alone, to the operation's own
route, so a quiet caller waits for nobody and sends what it always sent. Each
caller gets the `UpstreamResponse` its item would have had, and reads it as
before. A provider without the batch route (404/405: an older version) gets
the calls one by one; any other answer to the whole batch (403, 503...) is
every item's answer, as it would have been for each alone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ._errors import ErrorCode, exception_handler
from ._http import ServiceClient, UpstreamError, UpstreamResponse
from ._serializers import Serializer

# The most items one batch request carries (a larger batch is a 400).
MAX_BATCH_ITEMS = 50
# What an item's answer says of its body (it is JSON re-encoded from the batch's).
_JSON_HEADERS = {"Content-Type": "application/json"}
# A provider that does not know the batch route: send the calls one by one.
_NO_BATCH_ROUTE = frozenset({404, 405})


class BatchRequestSerializer(Serializer[Any]):
    """A batch: its items, each validated on its own by the operation."""

    items = serializers.ListField(child=serializers.DictField(), min_length=1, max_length=MAX_BATCH_ITEMS)


class BatchResultSerializer(Serializer[Any]):
    status = serializers.IntegerField(help_text="The HTTP status the item alone would have had.")
    body = serializers.JSONField(help_text="The body the item alone would have had.")


class BatchResponseSerializer(Serializer[Any]):
    results = BatchResultSerializer(many=True, help_text="One per item, in the items' order.")


def batch_response(request: Request, view: APIView, answer: Callable[[Any], Response]) -> Response:
    """The batch's answer: `answer(item)` for each item, an exception it raises
    rendered as the operation's own route would render it."""
    batch = BatchRequestSerializer(data=request.data)
    batch.is_valid(raise_exception=True)
    context = {"request": request, "view": view}
    results = []
    for item in batch.validated_data["items"]:
        try:
            response = answer(item)
        except Exception as error:  # noqa: BLE001 - each item's refusal is its own answer
            response = exception_handler(error, context)
        results.append({"status": response.status_code, "body": response.data})
    return Response({"results": results})


@dataclass(eq=False)
class _Call:
    body: Any
    idempotency_key: str | None
    # Set when the call is answered, or when its caller is to send the next batch.
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    answer: UpstreamResponse | None = None
    error: BaseException | None = None


class BatchedCalls:
    """POSTs of one operation from many threads, sent together while one is in flight.

    One batch is in flight at a time: the thread whose call found none sends
    its own call, alone; the calls that arrive meanwhile wait, and when the
    answer comes the first of them sends them all (up to `max_items`) as the
    next request. The caller's thread does the sending, so nothing runs in the
    background and a crashed caller leaves nothing half done: an unanswered
    call is its caller's to repeat, as with a plain call."""

    def __init__(
        self,
        client: Callable[[], ServiceClient],
        path: str,
        batch_path: str,
        *,
        max_items: int = MAX_BATCH_ITEMS,
    ) -> None:
        self._client = client
        self.path = path
        self.batch_path = batch_path
        self.max_items = max_items
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._in_flight = False

    @property
    def queued(self) -> int:
        """Calls waiting for the next request (the one in flight not counted)."""
        with self._lock:
            return len(self._waiting)

    def post(self, body: Any, *, idempotency_key: str | None = None) -> UpstreamResponse:
        """The operation's answer to `body`, as a POST of it alone to `path` would give."""
        call = _Call(body, idempotency_key)
        with self._lock:
            self._waiting.append(call)
            if not self._in_flight:
                self._in_flight = call.leads = True
        if not call.leads:
            call.ready.wait()
        if call.leads:
            self._send_waiting()
        if call.error is not None:
            raise call.error
        assert call.answer is not None
        return call.answer

    def _send_waiting(self) -> None:
        """Sends the calls waiting (this thread's first), answers them, and hands
        the next batch to the first call still waiting."""
        with self._lock:
            calls = self._waiting[: self.max_items]
            del self._waiting[: self.max_items]
        try:
            try:
                answers = self._send(calls)
            except BaseException as error:  # noqa: BLE001 - every call must hear about it
                answers = [error, *(_as_upstream_error(error) for _ in calls[1:])]
            for call, answer in zip(calls, answers, strict=True):
                if isinstance(answer, BaseException):
                    call.error = answer
                else:
                    call.answer = answer
        finally:
            # Whatever went wrong above, no call is left waiting and the next batch goes.
            with self._lock:
                if self._waiting:
                    following = self._waiting[0]
                    following.leads = True
                    following.ready.set()
                else:
                    self._in_flight = False
            for call in calls[1:]:
                if call.answer is None and call.error is None:
                    call.error = UpstreamError(ErrorCode.UNAVAILABLE, "the batch this call was in failed")
                call.ready.set()

    def _send(self, calls: list[_Call]) -> list[UpstreamResponse | BaseException]:
        client = self._client()
        if len(calls) == 1:
            return [client.post(self.path, json=calls[0].body, idempotency_key=calls[0].idempotency_key)]
        keys = [call.idempotency_key for call in calls]
        response = client.post(
            self.batch_path,
            json={"items": [call.body for call in calls]},
            # Retried like each call would be: when every one of them may be.
            idempotency_key=",".join(keys) if all(keys) else None,  # type: ignore[arg-type]
        )
        if response.status_code in _NO_BATCH_ROUTE:
            return [self._send_one(client, call) for call in calls]
        if response.status_code != 200:
            return [response] * len(calls)
        return _item_answers(response, len(calls))

    def _send_one(self, client: ServiceClient, call: _Call) -> UpstreamResponse | BaseException:
        try:
            return client.post(self.path, json=call.body, idempotency_key=call.idempotency_key)
        except UpstreamError as error:
            return error


def _item_answers(response: UpstreamResponse, count: int) -> list[UpstreamResponse | BaseException]:
    try:
        results = response.json()["results"]
        if not isinstance(results, list) or len(results) != count:
            raise ValueError("not one result per item")
        return [
            UpstreamResponse(
                status_code=int(result["status"]),
                headers=urllib3.HTTPHeaderDict(_JSON_HEADERS),
                content=json.dumps(result["body"]).encode(),
            )
            for result in results
        ]
    except (ValueError, KeyError, TypeError) as error:
        message = f"a batch answer without one result per item: {error}"
        return [UpstreamError(ErrorCode.UNAVAILABLE, message, status_code=502) for _ in range(count)]


def _as_upstream_error(error: BaseException) -> UpstreamError:
    """What a call sent in another thread's batch hears when that batch failed."""
    if isinstance(error, UpstreamError):
        return UpstreamError(error.code, error.message, details=error.details, status_code=error.status_code)
    return UpstreamError(ErrorCode.UNAVAILABLE, f"the batch this call was in failed: {type(error).__name__}")
