"""The benchmark's service: the chassis's base settings, the bench app, the topic from the environment."""

from comptoir.settings import *

INSTALLED_APPS += ["benchapp"]
ROOT_URLCONF = "benchproject.urls"
WSGI_APPLICATION = None
COMPTOIR_EVENTS = {
    "TOPICS": {"order.created": env.str("BENCH_TOPIC", default="bench.order-created")},
    "TOPIC_PARTITIONS": 3,
    # The bench service both produces and consumes order.created.
    "PRODUCERS": {"order.created": "bench_events"},
}
