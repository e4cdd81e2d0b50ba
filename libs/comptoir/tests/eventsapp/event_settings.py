"""Event settings of the chassis test project; subprocesses get their topic from the environment."""

import os
from pathlib import Path

COMPTOIR_EVENT_CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts" / "events"
COMPTOIR_EVENTS = {
    "RETRY_DELAYS": [float(d) for d in os.environ.get("EVENTSAPP_RETRY_DELAYS", "0.2,0.4").split(",")],
    "TOPICS": {"test.note-recorded": os.environ.get("EVENTSAPP_NOTES_TOPIC", "test.notes")},
    "TOPIC_PARTITIONS": 3,
    "RELAY_POLL_INTERVAL": float(os.environ.get("EVENTSAPP_RELAY_POLL_INTERVAL", "0.5")),
}
