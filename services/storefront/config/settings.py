"""Settings of the storefront: a server-rendered client of the API gateway.

It has no database. Sessions (the cart, and a pointer to the login's tokens) live in
the Redis cache; the tokens themselves sit in the cache under their own key, so the
refresh-token rotation is done once per login even when requests race (`shop.gateway`).
Every setting comes from the environment; with DJANGO_DEBUG off a real secret key is required.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if raw is None else raw.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
    SECRET_KEY = "local-only-insecure-storefront-key"  # noqa: S105 - DEBUG only
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]

# The only system the storefront talks to: the gateway's public API.
GATEWAY_URL = os.environ.get("API_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/")
GATEWAY_TIMEOUT_S = float(os.environ.get("GATEWAY_TIMEOUT_S", "20"))
# Where a person reads the API documents (the gateway's /docs), for the footer link.
PUBLIC_GATEWAY_URL = os.environ.get("PUBLIC_GATEWAY_URL", GATEWAY_URL).rstrip("/")
# How often the order page and the console's live panels poll (milliseconds).
LIVE_POLL_MS = int(os.environ.get("LIVE_POLL_MS", "1000"))

INSTALLED_APPS = [
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shop",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "shop.middleware.ContentSecurityPolicy",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "shop.middleware.GatewayErrors",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.messages.context_processors.messages",
                "shop.context.storefront",
            ],
        },
    }
]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "storefront",
        "TIMEOUT": 14 * 24 * 3600,
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_COOKIE_AGE = 14 * 24 * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# HTTPS: served over TLS behind a proxy (an Ingress) that says so in X-Forwarded-Proto.
HTTPS = _bool("HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Static files: the site's own CSS/JS plus htmx and uPlot straight from node_modules
# (package-lock.json pins them); WhiteNoise serves them, nothing comes from a CDN.
STATIC_URL = "/static/"
# Set where `collectstatic` gathers them (the image does); without it WhiteNoise
# serves them from their folders (the devstack).
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
NODE_MODULES = Path(os.environ.get("STOREFRONT_NODE_MODULES", str(BASE_DIR / "node_modules")))
STATICFILES_DIRS = [
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/uplot", NODE_MODULES / "uplot" / "dist"),
]
WHITENOISE_USE_FINDERS = True
WHITENOISE_MAX_AGE = 3600

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
USE_I18N = False
SILENCED_SYSTEM_CHECKS = ["staticfiles.W004"]  # node_modules absent before `make install`

LOGGING = logging_config(os.environ.get("LOG_LEVEL", "INFO"))
