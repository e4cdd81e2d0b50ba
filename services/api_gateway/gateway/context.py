"""What the gateway learns about one request, shared by its layers through the ASGI scope."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import Scope

SCOPE_KEY = "comptoir.gateway"
# The same request id, for code that sees no scope (each request runs in its own task).
current_request_id: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)
# And its traceparent, whose trace and span ids every log line of the request carries.
current_traceparent: ContextVar[str | None] = ContextVar("gateway_traceparent", default=None)


@dataclass
class RequestContext:
    request_id: str
    traceparent: str
    client_ip: str
    has_origin: bool = False
    route: str = "other"
    upstream: str | None = None
    user_id: str | None = None
    error_code: str | None = None


def context_of(scope: Scope) -> RequestContext:
    context = scope.get(SCOPE_KEY)
    if not isinstance(context, RequestContext):
        raise RuntimeError("the observability middleware must wrap this application")
    return context
