"""A Celery app per service, configured from its Django settings (`CELERY_*`).

Database connections outlive a task, as they outlive a request in the web
processes: Celery's Django fix-up would close them around every task (a new
PostgreSQL connection per task, about a quarter of a saga worker's time) unless
CELERY_DB_REUSE_MAX is set, which the chassis settings do; before each task the
chassis then applies Django's own rules (CONN_MAX_AGE, CONN_HEALTH_CHECKS, a
connection left broken by an error) as a request would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Any

from celery import Celery, bootsteps
from celery.signals import celeryd_init, setup_logging, task_prerun, worker_ready, worker_shutting_down


def _django_logging(**kwargs: Any) -> None:
    """Workers and beat log like every other process (ECS JSON lines, the chassis'
    LOGGING) instead of Celery's own format: connecting this signal replaces Celery's setup.

    Celery prints its start-up banner outside logging: the processes run with
    `celery --quiet`, and its "ready" line and every later one are ECS records."""
    from django.conf import settings

    from ._logging import configure_logging

    configure_logging(settings.LOGGING)


setup_logging.connect(_django_logging, weak=False, dispatch_uid="comptoir-logging")
# Earlier too: a worker checks its privileges (and may warn) before it sets up logging.
celeryd_init.connect(_django_logging, weak=False, dispatch_uid="comptoir-logging-early")


class _NoticeStream:
    """What a worker writes to `sys.__stdout__` around logging (and whatever
    `--quiet` says), some of it from signal handlers, where logging's locks must
    not be taken. Each line is formatted as the chassis' records are
    (ecs-logging, the context filter) and written to stdout's descriptor in one
    call. It has no `fileno`: Celery's `safe_say`, which would write plain text to
    that descriptor, writes nothing; its one notice worth keeping, the shutdown,
    is written by `_shutdown_notice` instead."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(
        self, service: str, *, logger: str = "celery.apps.worker", level: int = logging.INFO
    ) -> None:
        from ._logging import EcsFormatter, RequestContextFilter

        self.formatter = EcsFormatter(exclude_fields=["process", "log.origin", "log.original"])
        self.context = RequestContextFilter(service)
        self.logger = logger
        self.level = level

    def write(self, data: str) -> int:
        text = data.strip()
        if text:
            record = logging.LogRecord(self.logger, self.level, __file__, 0, text, None, None)
            self.context.filter(record)
            os.write(1, (self.formatter.format(record) + "\n").encode())
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        return False


class _StderrRecords(_NoticeStream):
    """`sys.stderr` of a ready worker: what libraries print there (kombu's "Restoring
    N unacknowledged message(s)" at shutdown) becomes records too. Code that asks for
    its descriptor still gets stderr's."""

    def fileno(self) -> int:
        return 2


def _notices_to_logging(**kwargs: Any) -> None:
    from django.conf import settings

    service = settings.COMPTOIR["SERVICE_NAME"]
    setattr(sys, "__stdout__", _NoticeStream(service))  # noqa: B010
    setattr(sys, "stderr", _StderrRecords(service, logger="stderr", level=logging.WARNING))  # noqa: B010


def _shutdown_notice(sig: str = "", how: str = "", **kwargs: Any) -> None:
    """The worker's shutdown notice as a record (this runs in the signal handler)."""
    stream = sys.__stdout__
    if isinstance(stream, _NoticeStream):
        stream.write(f"worker: {how} shutdown (MainProcess), on {sig}")


worker_shutting_down.connect(_shutdown_notice, weak=False, dispatch_uid="comptoir-worker-shutdown")
worker_ready.connect(_notices_to_logging, weak=False, dispatch_uid="comptoir-worker-notices")


def _recycle_old_connections(sender: Any = None, **kwargs: Any) -> None:
    """Before a task: drop connections past CONN_MAX_AGE or broken, as at a request's start."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run inside the caller (tests): its transaction's connection stays
    from django.db import close_old_connections

    close_old_connections()


task_prerun.connect(_recycle_old_connections, weak=False, dispatch_uid="comptoir-db-connections")


class WakeOnThreadCallbacks(bootsteps.StartStopStep):
    """Wakes the worker's event loop when a pool thread hands it a callback.

    With the threads pool a task's late acknowledgement (and whatever else a
    pool thread schedules with `call_soon`) is queued for the event loop, which
    runs it only when the loop next wakes: on broker traffic or its timers, up
    to a second later. Until then the acknowledged task still counts against
    the prefetch limit, so the worker takes no new task while its threads sit
    idle (a saga worker of eight threads confirmed about five orders a second
    this way). This step gives the loop a pipe to watch and writes a byte to it
    whenever another thread queues a callback; prefork workers (whose results
    arrive over pipes the loop already watches) are left alone.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._read_fd = -1
        self._write_fd = -1

    def start(self, parent: Any) -> None:
        from celery.concurrency.thread import TaskPool as ThreadTaskPool

        hub = parent.hub
        if hub is None or not isinstance(parent.pool, ThreadTaskPool):
            return
        if self._read_fd < 0:
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
            os.set_blocking(self._write_fd, False)
            self._wrap_call_soon(hub)
        # The loop drops its readers when the connection is lost; the consumer
        # then starts its steps again, and this one watches the pipe again.
        hub.add_reader(self._read_fd, self._drain)

    def _wrap_call_soon(self, hub: Any) -> None:
        loop_thread = threading.get_ident()
        queue_callback = hub.call_soon
        write_fd = self._write_fd

        def call_soon(callback: Any, *args: Any) -> Any:
            queued = queue_callback(callback, *args)
            if threading.get_ident() != loop_thread:
                # A full pipe holds wake-ups the loop has not read yet: it will wake.
                with contextlib.suppress(BlockingIOError):
                    os.write(write_fd, b"\0")
            return queued

        hub.call_soon = call_soon

    def _drain(self) -> None:
        # Until empty (BlockingIOError): the loop runs the queued callbacks at its next turn.
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass


def create_celery_app(service: str, settings_module: str = "config.settings") -> Celery:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    app = Celery(service)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.steps["consumer"].add(WakeOnThreadCallbacks)
    app.autodiscover_tasks()
    return app
