"""Settings for the worker and consumer processes the tests start: the
service's own, with event topics of the test's choosing (ORDER_SERVICE_TEST_TOPICS,
a JSON object event type -> topic) so a test never reads the platform's topics."""

import json
import os

from config.settings import *  # noqa: F403

COMPTOIR_EVENTS = {
    "TOPICS": json.loads(os.environ.get("ORDER_SERVICE_TEST_TOPICS", "{}")),
    "RETRY_DELAYS": [0.5],
}

# The test session's own queue: a step must never reach the devstack's worker.
CELERY_TASK_DEFAULT_QUEUE = os.environ["ORDER_SERVICE_TEST_QUEUE"]
