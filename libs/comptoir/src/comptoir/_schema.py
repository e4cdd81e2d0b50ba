"""OpenAPI (drf-spectacular) description of what the chassis adds to every service.

- The bearer authentication scheme (imported by the chassis app's `ready()`, so
  every service's schema names it instead of warning about an unknown class).
- One error component, `ErrorResponse`, the body `exception_handler` writes.
- `AutoSchema` (the services' `DEFAULT_SCHEMA_CLASS`): every operation lists
  the error statuses it can really answer, derived from the view, so a new view
  is documented truthfully without repeating them by hand:

  | status | when |
  | --- | --- |
  | 400 | a request body, or query parameters (filters, page size) |
  | 401 | the view reads a bearer token (a missing one or an invalid one is refused) |
  | 403 | a permission class other than `AllowAny` |
  | 404 | a path parameter, or a paginated list (a page past the end) |
  | 409 | a write (POST, PUT, PATCH, DELETE): uniqueness, state and idempotency conflicts |
  | 415 | a request body (JSON only) |
  | 429 | a throttle applies |

  A status a view declares itself (with its own description) is kept. The
  gateway adds what it answers itself (413, 429, 502, 503, 504) when it merges
  the documents.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

# The one error body of the platform; the gateway's document declares the same.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The platform's error body: a stable code, a message, details, the request id.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable code."},
                "message": {"type": "string"},
                "details": {"description": "Per-field problems for validation errors, else {}."},
                "trace_id": {"type": "string", "nullable": True, "description": "The request id."},
            },
            "required": ["code", "message", "details", "trace_id"],
        }
    },
    "required": ["error"],
}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is not valid (validation_error, parse_error, or a service's own code).",
    401: "No bearer token, or an invalid one (not_authenticated, authentication_failed).",
    403: "The caller may not do this (permission_denied, insufficient_scope).",
    404: "No such resource, or not one of the caller's (not_found).",
    409: "The change conflicts with the current state (conflict, or a service's own code).",
    415: "The body is not JSON (unsupported_media_type).",
    429: "Too many requests (throttled); Retry-After says when to retry.",
}

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ErrorResponseSerializer(serializers.Serializer[Any]):
    """The standard error body (described by `ERROR_SCHEMA`; never used to serialize)."""


class ErrorResponseExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    target_class = ErrorResponseSerializer

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return ERROR_SCHEMA


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "comptoir._auth.JWTAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "RS256 access token from user_service, or a service token for /internal/.",
        }


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, plus the error statuses each operation can answer."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for status in sorted(self.error_statuses(operation)):
            code = str(status)
            declared = responses.get(code)
            if declared is not None and declared.get("content"):
                continue
            description = (declared or {}).get("description") or ERROR_DESCRIPTIONS[status]
            responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                OpenApiResponse(ErrorResponseSerializer, description=description), code
            )
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def error_statuses(self, operation: dict[str, Any]) -> set[int]:
        view: Any = self.view
        method = str(self.method).upper()
        locations = {parameter.get("in") for parameter in operation.get("parameters", [])}
        statuses: set[int] = set()
        if "requestBody" in operation:
            statuses |= {400, 415}
        if "query" in locations:
            statuses.add(400)
        if view.get_authenticators():
            statuses.add(401)
        if any(not isinstance(permission, AllowAny) for permission in view.get_permissions()):
            statuses.add(403)
        if "path" in locations or (method == "GET" and self._is_list_view() and self._get_paginator()):  # type: ignore[no-untyped-call]
            statuses.add(404)
        if method in _WRITES:
            statuses.add(409)
        if view.get_throttles():
            statuses.add(429)
        return statuses
