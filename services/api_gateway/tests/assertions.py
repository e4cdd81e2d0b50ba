"""Assertions shared by the suites."""

from __future__ import annotations

import httpx


def assert_error(response: httpx.Response, status: int, code: str, request_id: str | None = None) -> None:
    """The gateway's standard error body, with the status, code and request id expected."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details", "trace_id"}
    assert body["error"]["code"] == code
    assert body["error"]["trace_id"] == response.headers["x-request-id"]
    if request_id is not None:
        assert body["error"]["trace_id"] == request_id
