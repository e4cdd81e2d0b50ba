"""Comptoir's microservice chassis: what every service shares.

A service calls `service_settings(...)` in its settings, includes
`health_urlpatterns()` in its URLs, and raises `ApplicationError` for failures
its callers must hear about; the rest (JSON logs, request ids, error bodies,
Kafka topics, the Celery app) follows from those.
"""

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
from ._kafka_admin import TopicSpec, ensure_topics
from ._logging import RequestContextFilter, logging_config, request_id_var
from ._middleware import RequestIdMiddleware
from ._settings import infrastructure_urls, service_settings

__all__ = [
    "ApplicationError",
    "ConflictError",
    "ErrorCode",
    "NotFoundError",
    "RequestContextFilter",
    "RequestIdMiddleware",
    "TopicSpec",
    "create_celery_app",
    "ensure_topics",
    "error_body",
    "exception_handler",
    "health_urlpatterns",
    "infrastructure_urls",
    "logging_config",
    "request_id_var",
    "run_checks",
    "service_settings",
]
