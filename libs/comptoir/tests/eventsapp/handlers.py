"""The test handler: fails on purpose when the payload or a Breakage row says so."""

import os
import time

from comptoir.events import Envelope, current_delivery, event_handler

from .models import Breakage, HandledNote


class PlannedFailure(RuntimeError):
    pass


@event_handler("test.note-recorded")
def record_note(event: Envelope) -> None:
    delivery = current_delivery()
    assert delivery is not None
    payload = event.payload
    if delivery.attempt <= payload.get("fail_times", 0):
        raise PlannedFailure(f"planned failure on attempt {delivery.attempt}")
    if payload.get("breakable") and Breakage.objects.filter(aggregate_id=event.aggregate_id).exists():
        raise PlannedFailure(f"{event.aggregate_id} is broken")
    if payload.get("work_ms"):
        time.sleep(payload["work_ms"] / 1000)  # simulated work, so a stream can be interrupted
    HandledNote.objects.create(
        event_id=event.event_id,
        aggregate_id=event.aggregate_id,
        seq=payload["seq"],
        attempt=delivery.attempt,
        group=delivery.group,
        pid=os.getpid(),
    )
