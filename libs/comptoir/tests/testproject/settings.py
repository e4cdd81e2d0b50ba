from pathlib import Path

from comptoir import service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("comptoir_chassis", BASE_DIR))

INSTALLED_APPS += ["testapp"]  # type: ignore[name-defined]  # noqa: F821
ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = None
INSTALLED_APPS += ["eventsapp"]  # type: ignore[name-defined]
from eventsapp.event_settings import COMPTOIR_EVENT_CONTRACTS_DIR, COMPTOIR_EVENTS  # noqa: E402, F401
