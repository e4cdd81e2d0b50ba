"""The platform's one error body, `{"error": {code, message, details, trace_id}}`,
for every answer the gateway gives itself (the services' own errors pass through)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from starlette.types import Send


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    CORS_REFUSED = "cors_refused"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    REQUEST_TIMEOUT = "request_timeout"
    THROTTLED = "throttled"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    URI_TOO_LONG = "uri_too_long"
    BAD_GATEWAY = "bad_gateway"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UNAVAILABLE = "unavailable"
    INTERNAL_ERROR = "internal_error"


def error_body(code: str, message: str, *, trace_id: str | None, details: Any = None) -> bytes:
    body = {
        "error": {
            "code": str(code),
            "message": message,
            "details": details if details is not None else {},
            "trace_id": trace_id,
        }
    }
    return json.dumps(body, separators=(",", ":")).encode()


class GatewayError(Exception):
    """A failure the gateway answers itself, with its status and stable code."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    trace_id: str | None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> None:
    body = error_body(code, message, trace_id=trace_id, details=details)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
