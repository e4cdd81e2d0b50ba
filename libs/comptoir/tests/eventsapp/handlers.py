"""The test handler: fails on purpose when the payload or a Breakage row says so."""

import os
import time
from collections import Counter

from django.db import connection

from comptoir.events import Envelope, current_delivery, event_handler

from .models import Breakage, HandledNote


class PlannedFailure(RuntimeError):
    pass


# Runs per event that cut their own database connection (`cut_connection_times`).
connection_cuts: Counter[str] = Counter()


@event_handler("test.note-recorded")
def record_note(event: Envelope) -> None:
    delivery = current_delivery()
    assert delivery is not None
    payload = event.payload
    if delivery.attempt <= payload.get("fail_times", 0):
        raise PlannedFailure(f"planned failure on attempt {delivery.attempt}")
    if connection_cuts[str(event.event_id)] < payload.get("cut_connection_times", 0):
        connection_cuts[str(event.event_id)] += 1
        with connection.cursor() as cursor:  # as a PostgreSQL restart does to every session
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
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
