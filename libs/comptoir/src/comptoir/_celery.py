"""A Celery app per service, configured from its Django settings (`CELERY_*`)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging


def _django_logging(**kwargs: Any) -> None:
    """Workers and beat log like every other process (ECS JSON lines, the chassis'
    LOGGING) instead of Celery's own format: connecting this signal replaces Celery's setup."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


setup_logging.connect(_django_logging, weak=False, dispatch_uid="comptoir-logging")


def create_celery_app(service: str, settings_module: str = "config.settings") -> Celery:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    app = Celery(service)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()
    return app
