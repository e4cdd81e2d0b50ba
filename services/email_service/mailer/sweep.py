"""The mail sweep, run by the worker process itself (no beat process).

Every EMAIL_SWEEP_INTERVAL_S (0: never), a thread of the Celery worker enqueues
again the QUEUED mails whose delivery task was lost (`email_requeue_stalled`).
Any number of workers may sweep at once: the sweep skips the rows another one
holds and the delivery sends a mail once (it locks the row, sends only a QUEUED
mail). A sweep that fails (database or Redis down) is logged and tried again
at the next interval; the worker goes on delivering.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0


class MailSweep(bootsteps.StartStopStep):
    """A worker bootstep: starts the sweep's thread with the worker, stops it with it."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        from django.conf import settings

        interval = float(settings.EMAIL_SWEEP_INTERVAL_S)
        if interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, args=(interval,), name="mail-sweep", daemon=True)
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def _loop(self, interval: float) -> None:
        from django.db import close_old_connections

        from .services import email_requeue_stalled

        while not self._stop.wait(interval):
            try:
                email_requeue_stalled()
            except Exception:  # the next round tries again
                logger.exception("the mail sweep failed; next one in %g s", interval)
            finally:
                close_old_connections()
