"""product_service settings: the chassis defaults plus what this service owns."""

import json
import os
from pathlib import Path

from comptoir import event_topic_spec, service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("product_service", BASE_DIR))

INSTALLED_APPS += ["catalog"]  # type: ignore[name-defined]  # noqa: F821

# Catalogue pages: `?page_size=` may ask for up to this many products at once.
CATALOG_MAX_PAGE_SIZE = 100

# Events (comptoir.events). The topics this service produces to and consumes
# from, so `manage.py create_topics` (and the relay at start-up) make them; the
# consumer adds their retry and dead-letter topics itself.
COMPTOIR["KAFKA_TOPICS"] = [  # type: ignore[name-defined]  # noqa: F821
    event_topic_spec(name)
    for name in (
        # produced (outbox relay)
        "stock.stock-reserved",
        "stock.stock-rejected",
        "stock.stock-released",
        # consumed (consume_events)
        "orders.order-created",
        "orders.order-cancelled",
        "orders.order-confirmed",
    )
]
# Event type -> topic overrides as a JSON object (tests use topics of their own).
COMPTOIR_EVENTS = {"TOPICS": json.loads(os.environ.get("COMPTOIR_EVENT_TOPICS") or "{}")}
