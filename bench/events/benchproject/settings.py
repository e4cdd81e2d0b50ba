"""The benchmark's service: the chassis defaults, the bench app, the topic from the environment."""

import os
from pathlib import Path

from comptoir import service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("bench_events", BASE_DIR))

INSTALLED_APPS += ["benchapp"]  # type: ignore[name-defined]  # noqa: F821
ROOT_URLCONF = "benchproject.urls"
WSGI_APPLICATION = None
COMPTOIR_EVENTS = {
    "TOPICS": {"order.created": os.environ.get("BENCH_TOPIC", "bench.order-created")},
    "TOPIC_PARTITIONS": 3,
    # The bench service both produces and consumes order.created.
    "PRODUCERS": {"order.created": "bench_events"},
}
