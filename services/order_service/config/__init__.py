from .celery import app as celery_app

# The service these settings are for: comptoir.settings (the base settings) reads it.
SERVICE_NAME = "order_service"

__all__ = ["SERVICE_NAME", "celery_app"]
