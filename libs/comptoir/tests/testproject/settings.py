import os
from pathlib import Path

from comptoir import event_topic_spec, service_settings

# The tests read whole traces back: keep every one (the shipped default samples).
os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_always_on")

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("comptoir_chassis", BASE_DIR))

INSTALLED_APPS += ["testapp"]  # type: ignore[name-defined]  # noqa: F821
ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = None
INSTALLED_APPS += ["eventsapp"]  # type: ignore[name-defined]
from eventsapp.event_settings import COMPTOIR_EVENT_CONTRACTS_DIR, COMPTOIR_EVENTS  # noqa: E402, F401

# A spawned relay declares the notes topic at start-up, as a service's relay
# declares the topics it produces to.
if os.environ.get("EVENTSAPP_NOTES_TOPIC"):
    COMPTOIR["KAFKA_TOPICS"] = [event_topic_spec(os.environ["EVENTSAPP_NOTES_TOPIC"])]  # type: ignore[name-defined]  # noqa: F821
