"""user_service settings: the chassis defaults plus what this service owns."""

from pathlib import Path

from comptoir import service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("user_service", BASE_DIR))

INSTALLED_APPS += ["users"]  # type: ignore[name-defined]  # noqa: F821

AUTH_USER_MODEL = "users.User"
