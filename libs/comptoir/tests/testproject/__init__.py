"""A minimal Django project that exercises the chassis the way a service does."""

from .celery import app as celery_app

# The service these settings are for: comptoir.settings (the base settings) reads it.
SERVICE_NAME = "comptoir_chassis"

__all__ = ["SERVICE_NAME", "celery_app"]
