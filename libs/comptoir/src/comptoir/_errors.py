"""One error body for every service: `{"error": {code, message, details, trace_id}}`.

Domain code raises `ApplicationError` (or a subclass) with a stable `code`; the
DRF exception handler and the Django 404/500 handlers turn every failure,
including DRF's own and unexpected ones, into that body with the right status.
An unexpected exception is logged with its traceback and answered as a plain
500 that reveals nothing of it.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from ._logging import request_id_var

logger = logging.getLogger("comptoir.errors")


class ErrorCode(StrEnum):
    """Codes every service shares; services add their own Enums beside it."""

    VALIDATION_ERROR = "validation_error"
    PARSE_ERROR = "parse_error"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    CONFLICT = "conflict"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"


class ApplicationError(Exception):
    """A failure the caller should hear about, with a stable machine-readable code."""

    status_code = 400

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Any = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.details = details if details is not None else {}
        if status_code is not None:
            self.status_code = status_code


class Unavailable(drf_exceptions.APIException):
    """Something the answer depends on is down for now: 503 with Retry-After, the
    standard body (code `unavailable`); the caller should retry, not give up."""

    status_code = 503
    default_detail = "Temporarily unavailable; retry shortly."
    default_code = "unavailable"

    def __init__(self, detail: str | None = None, *, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class NotFoundError(ApplicationError):
    status_code = 404


class ConflictError(ApplicationError):
    status_code = 409


def current_trace_id() -> str | None:
    """The id a client quotes to find this request in the logs: the request id."""
    return request_id_var.get()


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "error": {
            "code": str(code),
            "message": message,
            "details": details if details is not None else {},
            "trace_id": current_trace_id(),
        }
    }


_DRF_CODES: dict[type[drf_exceptions.APIException], ErrorCode] = {
    drf_exceptions.ValidationError: ErrorCode.VALIDATION_ERROR,
    drf_exceptions.ParseError: ErrorCode.PARSE_ERROR,
    drf_exceptions.NotAuthenticated: ErrorCode.NOT_AUTHENTICATED,
    drf_exceptions.AuthenticationFailed: ErrorCode.AUTHENTICATION_FAILED,
    drf_exceptions.PermissionDenied: ErrorCode.PERMISSION_DENIED,
    drf_exceptions.NotFound: ErrorCode.NOT_FOUND,
    drf_exceptions.MethodNotAllowed: ErrorCode.METHOD_NOT_ALLOWED,
    drf_exceptions.NotAcceptable: ErrorCode.NOT_ACCEPTABLE,
    drf_exceptions.UnsupportedMediaType: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    drf_exceptions.Throttled: ErrorCode.THROTTLED,
    Unavailable: ErrorCode.UNAVAILABLE,
}

_DRF_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.VALIDATION_ERROR: "The request is not valid; see details.",
}


def _drf_code(exc: drf_exceptions.APIException) -> ErrorCode:
    for klass in type(exc).__mro__:
        if klass in _DRF_CODES:
            return _DRF_CODES[klass]
    return ErrorCode.INTERNAL_ERROR if exc.status_code >= 500 else ErrorCode.VALIDATION_ERROR


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception becomes the standard error body."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        code = _drf_code(exc)
        if isinstance(exc, drf_exceptions.ValidationError):
            message = _DRF_MESSAGES[code]
            details: Any = exc.detail
        else:
            message = str(exc.detail)
            details = {}
        headers: dict[str, str] = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = str(exc.auth_header)  # type: ignore[attr-defined]
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(int(wait) + 1)
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(exc.retry_after_s)
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)
    logger.exception("unhandled error", extra={"view": type(context.get("view")).__name__})
    return Response(error_body(ErrorCode.INTERNAL_ERROR, "An unexpected error occurred."), status=500)


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Django's handler404 for URLs outside DRF views."""
    return JsonResponse(error_body(ErrorCode.NOT_FOUND, "No such resource."), status=404)


def json_500(request: HttpRequest) -> JsonResponse:
    """Django's handler500: nothing of the failure leaks to the client."""
    return JsonResponse(error_body(ErrorCode.INTERNAL_ERROR, "An unexpected error occurred."), status=500)


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(ErrorCode.VALIDATION_ERROR, "Bad request."), status=400)


def json_403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(ErrorCode.PERMISSION_DENIED, "Permission denied."), status=403)
