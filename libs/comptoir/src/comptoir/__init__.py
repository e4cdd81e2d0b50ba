"""Comptoir's microservice chassis: what every service shares.

A service's settings start from `comptoir.settings`, its URLs include
`health_urlpatterns()`, and it raises `ApplicationError` for failures
its callers must hear about; the rest (JSON logs, request ids, error bodies,
Kafka topics, the Celery app) follows from those.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._audit import (
        AuditPageQuerySerializer,
        AuditWindowQuerySerializer,
        audit_next_after,
        audit_page_query,
    )
    from ._auth import (
        InvalidToken,
        IsEndUser,
        IsServiceClient,
        IsStaff,
        JWTAuthentication,
        Principal,
        decode_token,
    )
    from ._batch import (
        MAX_BATCH_ITEMS,
        BatchedCalls,
        BatchRequestSerializer,
        BatchResponseSerializer,
        batch_response,
    )
    from ._celery import create_celery_app
    from ._errors import (
        ApplicationError,
        ConflictError,
        ErrorCode,
        NotFoundError,
        error_body,
        exception_handler,
    )
    from ._health import health_urlpatterns, run_checks
    from ._http import (
        ErrorBody,
        ServiceClient,
        ServiceTokenProvider,
        UpstreamError,
        UpstreamResponse,
        parse_error_body,
        response_json,
        service_client,
    )
    from ._kafka_admin import TopicSpec, ensure_topics, event_topic_spec
    from ._kafka_security import kafka_client_config
    from ._logging import RequestContextFilter, logging_config, request_id_var
    from ._middleware import RequestIdMiddleware
    from ._schema import AutoSchema, ErrorResponseSerializer
    from ._scopes import ServiceScopeRequired, requires_scope
    from ._serializers import ModelSerializer, Serializer
    from ._settings import infrastructure_urls, service_urls

# Loaded on first use (PEP 562): the settings can import from the chassis before
# Django is configured, without pulling in DRF.
_SOURCES = {
    "ApplicationError": "._errors",
    "AuditPageQuerySerializer": "._audit",
    "AuditWindowQuerySerializer": "._audit",
    "AutoSchema": "._schema",
    "BatchRequestSerializer": "._batch",
    "BatchResponseSerializer": "._batch",
    "BatchedCalls": "._batch",
    "MAX_BATCH_ITEMS": "._batch",
    "batch_response": "._batch",
    "ConflictError": "._errors",
    "ErrorBody": "._http",
    "ErrorCode": "._errors",
    "ErrorResponseSerializer": "._schema",
    "InvalidToken": "._auth",
    "IsEndUser": "._auth",
    "IsServiceClient": "._auth",
    "IsStaff": "._auth",
    "JWTAuthentication": "._auth",
    "ModelSerializer": "._serializers",
    "NotFoundError": "._errors",
    "Principal": "._auth",
    "RequestContextFilter": "._logging",
    "RequestIdMiddleware": "._middleware",
    "Serializer": "._serializers",
    "ServiceClient": "._http",
    "ServiceScopeRequired": "._scopes",
    "ServiceTokenProvider": "._http",
    "TopicSpec": "._kafka_admin",
    "event_topic_spec": "._kafka_admin",
    "UpstreamError": "._http",
    "UpstreamResponse": "._http",
    "audit_next_after": "._audit",
    "audit_page_query": "._audit",
    "create_celery_app": "._celery",
    "decode_token": "._auth",
    "ensure_topics": "._kafka_admin",
    "error_body": "._errors",
    "exception_handler": "._errors",
    "health_urlpatterns": "._health",
    "infrastructure_urls": "._settings",
    "kafka_client_config": "._kafka_security",
    "logging_config": "._logging",
    "parse_error_body": "._http",
    "request_id_var": "._logging",
    "requires_scope": "._scopes",
    "response_json": "._http",
    "run_checks": "._health",
    "service_client": "._http",
    "service_urls": "._settings",
}

__all__ = [
    "MAX_BATCH_ITEMS",
    "ApplicationError",
    "AuditPageQuerySerializer",
    "AuditWindowQuerySerializer",
    "AutoSchema",
    "BatchRequestSerializer",
    "BatchResponseSerializer",
    "BatchedCalls",
    "ConflictError",
    "ErrorBody",
    "ErrorCode",
    "ErrorResponseSerializer",
    "InvalidToken",
    "IsEndUser",
    "IsServiceClient",
    "IsStaff",
    "JWTAuthentication",
    "ModelSerializer",
    "NotFoundError",
    "Principal",
    "RequestContextFilter",
    "RequestIdMiddleware",
    "Serializer",
    "ServiceClient",
    "ServiceScopeRequired",
    "ServiceTokenProvider",
    "TopicSpec",
    "UpstreamError",
    "UpstreamResponse",
    "audit_next_after",
    "audit_page_query",
    "batch_response",
    "create_celery_app",
    "decode_token",
    "ensure_topics",
    "error_body",
    "event_topic_spec",
    "exception_handler",
    "health_urlpatterns",
    "infrastructure_urls",
    "kafka_client_config",
    "logging_config",
    "parse_error_body",
    "request_id_var",
    "requires_scope",
    "response_json",
    "run_checks",
    "service_client",
    "service_urls",
]


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
