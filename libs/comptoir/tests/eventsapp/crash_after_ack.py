"""The outbox relay, SIGKILLed by itself right after the broker acknowledged a
batch and before the rows are marked sent: the worst moment to crash."""

import os
import signal
from typing import Any

import django

django.setup()

from comptoir.events import OutboxRelay  # noqa: E402


def _die_before_marking(self: OutboxRelay, cursor: Any, ids: list[int]) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


OutboxRelay._mark_sent = _die_before_marking  # type: ignore[method-assign]
OutboxRelay().run(max_seconds=60)
