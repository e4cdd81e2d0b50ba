import os

# The tests read whole traces back: keep every one (the shipped default samples).
os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_always_on")

from eventsapp import event_settings

from comptoir import event_topic_spec
from comptoir.settings import *

INSTALLED_APPS += ["testapp", "eventsapp"]
ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = None
COMPTOIR_EVENT_CONTRACTS_DIR = event_settings.COMPTOIR_EVENT_CONTRACTS_DIR
COMPTOIR_EVENTS = event_settings.COMPTOIR_EVENTS

# A spawned relay declares the notes topic at start-up, as a service's relay
# declares the topics it produces to.
if os.environ.get("EVENTSAPP_NOTES_TOPIC"):
    COMPTOIR["KAFKA_TOPICS"] = [event_topic_spec(os.environ["EVENTSAPP_NOTES_TOPIC"])]
