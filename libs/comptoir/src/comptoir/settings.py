"""The Django settings every service starts from: a plain base module, read from
the environment (twelve-factor).

A service names itself in its settings package (`config/__init__.py`; settings
layered over the service's, e.g. a test's, find it there too):

    SERVICE_NAME = "order_service"

and its `config/settings.py` starts from this module, then adds what it owns:

    from comptoir.settings import *

    INSTALLED_APPS += ["orders"]

Every value that differs between environments comes from an environment
variable (read with django-environ, `env`) with a default that works against
the local devstack. BASE_DIR is the folder holding the settings package.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from ._kafka_admin import TopicSpec, catalog_topic_specs
from ._kafka_security import kafka_security_from_env
from ._logging import logging_config
from ._multiproc import ensure_multiprocess_dir
from ._production import require_production_secrets
from ._settings import env, infrastructure_urls, service_urls

# Lets `admin.ModelAdmin[User]` and other typed generics work at run time.
django_stubs_ext.monkeypatch()


def _service_package() -> Any:
    """The package that names the service: the settings module's own (`config`,
    `testproject`...), else `config` (settings layered over the service's, as a
    test's `tests.process_settings`)."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")
    for name in (module.rpartition(".")[0], "config"):
        package = importlib.import_module(name) if name else None
        if hasattr(package, "SERVICE_NAME"):
            return package
    raise ImproperlyConfigured(
        f"comptoir.settings: no SERVICE_NAME in the package of {module} nor in config/__init__.py"
    )


_package = _service_package()
SERVICE_NAME: str = _package.SERVICE_NAME
BASE_DIR: Path = Path(_package.__file__).resolve().parent.parent

# Before anything imports prometheus_client: one metrics folder per process group.
ensure_multiprocess_dir(SERVICE_NAME)

_urls = infrastructure_urls(SERVICE_NAME)
_database = env.db_url_config(_urls["DATABASE_URL"])
_database.update({"CONN_MAX_AGE": env.int("DB_CONN_MAX_AGE", default=60), "CONN_HEALTH_CHECKS": True})
if _database.get("ENGINE") == "django.db.backends.postgresql":
    _database["ENGINE"] = "comptoir.postgresql"  # the same, with a health check that sends no query
    # Parameters bound by the server, and a statement run DB_PREPARE_THRESHOLD times
    # on a connection prepared there (psycopg keeps the last 100 per connection):
    # PostgreSQL then skips parsing and planning it, two thirds of its CPU for a
    # short statement. Prepared statements need a direct connection or a pooler that
    # keeps them (PgBouncer >= 1.21 with max_prepared_statements); 0 turns them off.
    _prepare_threshold = env.int("DB_PREPARE_THRESHOLD", default=5)
    _database["OPTIONS"] = {
        **_database.get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": _prepare_threshold if _prepare_threshold > 0 else None,
    }

DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
# With DEBUG=False, no development SECRET_KEY, client secret or Kafka password.
require_production_secrets(
    debug=DEBUG, environ=os.environ, secrets=("DJANGO_SECRET_KEY", "SERVICE_CLIENT_SECRET")
)

# `<SERVICE>_URL` of every service.
_service_urls = service_urls()
USER_SERVICE_URL: str = _service_urls["USER_SERVICE_URL"]
PRODUCT_SERVICE_URL: str = _service_urls["PRODUCT_SERVICE_URL"]
ORDER_SERVICE_URL: str = _service_urls["ORDER_SERVICE_URL"]
PAYMENT_SERVICE_URL: str = _service_urls["PAYMENT_SERVICE_URL"]
EMAIL_SERVICE_URL: str = _service_urls["EMAIL_SERVICE_URL"]

# Identity: tokens issued by user_service, verified with its JWKS.
JWT_ISSUER: str = env.str("JWT_ISSUER", default="comptoir-user-service")
JWT_AUDIENCE: str = env.str("JWT_AUDIENCE", default="comptoir")
JWT_SERVICE_AUDIENCE: str = env.str("JWT_SERVICE_AUDIENCE", default="comptoir-internal")
JWKS_URL: str = env.str("JWKS_URL", default=f"{USER_SERVICE_URL}/api/users/auth/jwks/")
# This service's own credentials, to call other services' internal endpoints.
SERVICE_CLIENT_ID: str = env.str("SERVICE_CLIENT_ID", default=SERVICE_NAME)
SERVICE_CLIENT_SECRET: str = env.str("SERVICE_CLIENT_SECRET", default=f"{SERVICE_NAME}-local-secret")
SERVICE_TOKEN_URL: str = env.str(
    "SERVICE_TOKEN_URL", default=f"{USER_SERVICE_URL}/internal/users/auth/service-token/"
)
# Calls to other services (`comptoir.service_client(name)`): seconds to wait for an
# answer, `<NAME>_TIMEOUT_S` else UPSTREAM_TIMEOUT_S, and the retries (jittered
# exponential backoff) of idempotent calls on connection errors and 502-504.
UPSTREAM_TIMEOUT_S: float = env.float("UPSTREAM_TIMEOUT_S", default=5.0)
UPSTREAM_RETRIES: int = env.int("UPSTREAM_RETRIES", default=2)
UPSTREAM_BACKOFF_S: float = env.float("UPSTREAM_BACKOFF_S", default=0.1)
USER_SERVICE_TIMEOUT_S: float = env.float("USER_SERVICE_TIMEOUT_S", default=3.0)
# Placing an order waits for product_service's quote: fail fast rather than hold the
# caller (and a gunicorn worker) when the catalogue is slow.
PRODUCT_SERVICE_TIMEOUT_S: float = env.float("PRODUCT_SERVICE_TIMEOUT_S", default=3.0)
PAYMENT_SERVICE_TIMEOUT_S: float = env.float("PAYMENT_SERVICE_TIMEOUT_S", default=5.0)

SECRET_KEY: str = env.str("DJANGO_SECRET_KEY", default=f"local-only-insecure-{SERVICE_NAME}-key")
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
INSTALLED_APPS: list[str] = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "comptoir",
    "comptoir.events",
]
MIDDLEWARE: list[str] = [
    "comptoir._metrics.MetricsMiddleware",
    "comptoir.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The admin's static files, served by the web process itself (DEBUG or not).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF: str = "config.urls"
WSGI_APPLICATION: str | None = "config.wsgi.application"
TEMPLATES: list[dict[str, Any]] = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES: dict[str, dict[str, Any]] = {"default": dict(_database)}
CACHES: dict[str, dict[str, Any]] = {
    "default": {
        # Django's, with one Redis client per pool instead of one per operation.
        "BACKEND": "comptoir._redis_cache.RedisCache",
        "LOCATION": _urls["REDIS_URL"],
        "KEY_PREFIX": SERVICE_NAME,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Static files are the admin's (and DRF's): WhiteNoise finds them where the apps
# keep them, at start-up, so no collectstatic step is needed in the image or the
# devstack. A collected folder (`collectstatic` into DJANGO_STATIC_ROOT) is served
# too when one is given.
STATIC_ROOT: str | None = env.str("DJANGO_STATIC_ROOT", default=None)
WHITENOISE_USE_FINDERS = True
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["comptoir.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=20),
    "DEFAULT_SCHEMA_CLASS": "comptoir.AutoSchema",
    "EXCEPTION_HANDLER": "comptoir.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "comptoir._throttling.EndUserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="10000/minute"),
        "user": env.str("THROTTLE_USER", default="20000/minute"),
    },
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": f"Comptoir {SERVICE_NAME}",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}
LOGGING: dict[str, Any] = logging_config(SERVICE_NAME, env.str("LOG_LEVEL", default="INFO"))
LOGGING_CONFIG = "comptoir._logging.configure_logging"
REDIS_URL: str = _urls["REDIS_URL"]
KAFKA_BOOTSTRAP_SERVERS: str = _urls["KAFKA_BOOTSTRAP_SERVERS"]
# librdkafka security properties (SASL/TLS) of every Kafka client: comptoir._kafka_security.
KAFKA_SECURITY: dict[str, str] = kafka_security_from_env()
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND: str = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
if CELERY_BROKER_URL.partition("://")[0] == "redis":
    # kombu's Redis transport with one client per channel (comptoir._celery_redis).
    CELERY_BROKER_TRANSPORT = "comptoir._celery_redis:Transport"
# A task's outcome lives in its service's database (a saga's step, a mail's
# status); nothing reads a task's return value back, so storing it in Redis on
# every task is work for nobody. A task that needs its result says so itself
# (`ignore_result=False`).
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE: str = SERVICE_NAME
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Keep database connections across tasks (see comptoir._celery): Celery closes
# them only once every 2 x this many tasks.
CELERY_DB_REUSE_MAX: int = env.int("CELERY_DB_REUSE_MAX", default=1000)

# Event type -> topic overrides as a JSON object (tests use topics of their own).
COMPTOIR_EVENTS: dict[str, Any] = {"TOPICS": json.loads(env.str("COMPTOIR_EVENT_TOPICS", default="") or "{}")}

_topics: list[TopicSpec] = catalog_topic_specs(SERVICE_NAME, BASE_DIR)
COMPTOIR: dict[str, Any] = {
    "SERVICE_NAME": SERVICE_NAME,
    "HEALTH_CHECKS": ["database", "redis", "kafka"],
    # TopicSpec objects the service needs; `manage.py create_topics` makes them. By
    # default the topics of the event types it produces and consumes, as the event
    # catalogue (contracts/events/catalog.json) names them.
    "KAFKA_TOPICS": _topics,
}
