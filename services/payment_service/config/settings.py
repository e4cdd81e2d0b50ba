"""payment_service settings: the chassis defaults plus what this service owns."""

import json
import os
from pathlib import Path

from comptoir import event_topic_spec, service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("payment_service", BASE_DIR))

INSTALLED_APPS += ["payments"]  # type: ignore[name-defined]  # noqa: F821

# Currencies a charge may be made in; the first one is the currency of new wallets.
PAYMENT_CURRENCIES = [
    code.strip() for code in os.environ.get("PAYMENT_CURRENCIES", "EUR").split(",") if code.strip()
]
# How many ledger entries GET /api/payments/wallet/ shows.
PAYMENT_WALLET_RECENT_ENTRIES = int(os.environ.get("PAYMENT_WALLET_RECENT_ENTRIES", "20"))

# Events (comptoir.events). The topics this service produces to and consumes
# from, so `manage.py create_topics` (and the relay at start-up) make them; the
# consumer adds their retry and dead-letter topics itself.
COMPTOIR["KAFKA_TOPICS"] = [  # type: ignore[name-defined]  # noqa: F821
    event_topic_spec(name)
    for name in (
        # produced (outbox relay)
        "payments.payment-succeeded",
        "payments.payment-failed",
        "payments.payment-refunded",
        # consumed (consume_events)
        "stock.stock-reserved",
        "orders.order-cancelled",
    )
]
# Event type -> topic overrides as a JSON object (tests use topics of their own).
COMPTOIR_EVENTS = {"TOPICS": json.loads(os.environ.get("COMPTOIR_EVENT_TOPICS") or "{}")}
