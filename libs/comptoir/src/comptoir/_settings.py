"""Django settings every service shares, read from the environment (twelve-factor).

A service's `config/settings.py` is:

    from comptoir import service_settings
    globals().update(service_settings("order_service", BASE_DIR))
    INSTALLED_APPS += ["orders"]

Every value that differs between environments comes from an environment
variable with a default that works against the local devstack.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ

from ._kafka_security import kafka_security_from_env
from ._logging import logging_config
from ._multiproc import ensure_multiprocess_dir
from ._production import require_production_secrets

# Lets `admin.ModelAdmin[User]` and other typed generics work at run time.
django_stubs_ext.monkeypatch()

env = environ.Env()


def _local_port(name: str, default: int) -> int:
    return int(env.str(name, default=str(default)))


def infrastructure_urls(service: str) -> dict[str, str]:
    """Where PostgreSQL, Redis and Kafka are: env vars, else the devstack's ports."""
    pg_port = _local_port("COMPTOIR_PG_PORT", 5433)
    redis_port = _local_port("COMPTOIR_REDIS_PORT", 6380)
    kafka_port = _local_port("COMPTOIR_KAFKA_PORT", 9092)
    return {
        "DATABASE_URL": env.str(
            "DATABASE_URL", default=f"postgres://{service}:{service}@127.0.0.1:{pg_port}/{service}"
        ),
        "REDIS_URL": env.str("REDIS_URL", default=f"redis://127.0.0.1:{redis_port}/0"),
        "KAFKA_BOOTSTRAP_SERVERS": env.str("KAFKA_BOOTSTRAP_SERVERS", default=f"127.0.0.1:{kafka_port}"),
    }


SERVICES = ("user_service", "product_service", "order_service", "payment_service", "email_service")
SERVICE_PORTS = {
    "user_service": 8001,
    "product_service": 8002,
    "order_service": 8003,
    "payment_service": 8004,
    "email_service": 8005,
}


def service_urls() -> dict[str, str]:
    """`<SERVICE>_URL` for every service: env vars, else the devstack's ports."""
    return {
        f"{name.upper()}_URL": env.str(f"{name.upper()}_URL", default=f"http://127.0.0.1:{port}")
        for name, port in SERVICE_PORTS.items()
    }


def service_settings(
    service: str,
    base_dir: Path,
    *,
    database: str | None = None,
    health_checks: tuple[str, ...] = ("database", "redis", "kafka"),
) -> dict[str, Any]:
    """The shared settings for `service`; `database` overrides the database name."""
    # Before anything imports prometheus_client: one metrics folder per process group.
    ensure_multiprocess_dir(service)
    urls = infrastructure_urls(database or service)
    database_config = env.db_url_config(urls["DATABASE_URL"])
    database_config.update(
        {"CONN_MAX_AGE": env.int("DB_CONN_MAX_AGE", default=60), "CONN_HEALTH_CHECKS": True}
    )
    debug = env.bool("DJANGO_DEBUG", default=False)
    # With DEBUG=False, no development SECRET_KEY, client secret or Kafka password.
    require_production_secrets(
        debug=debug, environ=os.environ, secrets=("DJANGO_SECRET_KEY", "SERVICE_CLIENT_SECRET")
    )
    urls_of_services = service_urls()
    user_service_url = urls_of_services["USER_SERVICE_URL"]
    return {
        **urls_of_services,
        # Identity: tokens issued by user_service, verified with its JWKS.
        "JWT_ISSUER": env.str("JWT_ISSUER", default="comptoir-user-service"),
        "JWT_AUDIENCE": env.str("JWT_AUDIENCE", default="comptoir"),
        "JWT_SERVICE_AUDIENCE": env.str("JWT_SERVICE_AUDIENCE", default="comptoir-internal"),
        "JWKS_URL": env.str("JWKS_URL", default=f"{user_service_url}/api/users/auth/jwks/"),
        # This service's own credentials, to call other services' internal endpoints.
        "SERVICE_CLIENT_ID": env.str("SERVICE_CLIENT_ID", default=service),
        "SERVICE_CLIENT_SECRET": env.str("SERVICE_CLIENT_SECRET", default=f"{service}-local-secret"),
        "SERVICE_TOKEN_URL": env.str(
            "SERVICE_TOKEN_URL", default=f"{user_service_url}/internal/users/auth/service-token/"
        ),
        "BASE_DIR": base_dir,
        "SECRET_KEY": env.str("DJANGO_SECRET_KEY", default=f"local-only-insecure-{service}-key"),
        "DEBUG": debug,
        "ALLOWED_HOSTS": env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"]),
        "INSTALLED_APPS": [
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
        ],
        "MIDDLEWARE": [
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
        ],
        "ROOT_URLCONF": "config.urls",
        "WSGI_APPLICATION": "config.wsgi.application",
        "TEMPLATES": [
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
        ],
        "DATABASES": {"default": database_config},
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": urls["REDIS_URL"],
                "KEY_PREFIX": service,
            }
        },
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "LANGUAGE_CODE": "en-us",
        "TIME_ZONE": "UTC",
        "USE_I18N": True,
        "USE_TZ": True,
        "STATIC_URL": "static/",
        # Static files are the admin's (and DRF's): WhiteNoise finds them where the
        # apps keep them, at start-up, so no collectstatic step is needed in the image
        # or the devstack. A collected folder (`collectstatic` into DJANGO_STATIC_ROOT)
        # is served too when one is given.
        "STATIC_ROOT": env.str("DJANGO_STATIC_ROOT", default=None),
        "WHITENOISE_USE_FINDERS": True,
        "REST_FRAMEWORK": {
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
        },
        "SPECTACULAR_SETTINGS": {
            "TITLE": f"Comptoir {service}",
            "VERSION": "1.0.0",
            "SERVE_INCLUDE_SCHEMA": False,
        },
        "LOGGING": logging_config(service, env.str("LOG_LEVEL", default="INFO")),
        "LOGGING_CONFIG": "comptoir._logging.configure_logging",
        "REDIS_URL": urls["REDIS_URL"],
        "KAFKA_BOOTSTRAP_SERVERS": urls["KAFKA_BOOTSTRAP_SERVERS"],
        # librdkafka security properties (SASL/TLS) of every Kafka client: comptoir._kafka_security.
        "KAFKA_SECURITY": kafka_security_from_env(),
        "CELERY_BROKER_URL": env.str("CELERY_BROKER_URL", default=urls["REDIS_URL"]),
        "CELERY_RESULT_BACKEND": env.str("CELERY_RESULT_BACKEND", default=urls["REDIS_URL"]),
        "CELERY_TASK_ACKS_LATE": True,
        "CELERY_TASK_REJECT_ON_WORKER_LOST": True,
        "CELERY_WORKER_PREFETCH_MULTIPLIER": 1,
        "CELERY_TASK_SERIALIZER": "json",
        "CELERY_RESULT_SERIALIZER": "json",
        "CELERY_ACCEPT_CONTENT": ["json"],
        "CELERY_TASK_DEFAULT_QUEUE": service,
        "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
        # Keep database connections across tasks (see comptoir._celery): Celery closes
        # them only once every 2 x this many tasks.
        "CELERY_DB_REUSE_MAX": env.int("CELERY_DB_REUSE_MAX", default=1000),
        "COMPTOIR": {
            "SERVICE_NAME": service,
            "HEALTH_CHECKS": list(health_checks),
            # TopicSpec objects the service needs; `manage.py create_topics` makes them.
            "KAFKA_TOPICS": [],
        },
    }
