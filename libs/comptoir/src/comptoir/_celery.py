"""A Celery app per service, configured from its Django settings (`CELERY_*`).

Database connections outlive a task, as they outlive a request in the web
processes: Celery's Django fix-up would close them around every task (a new
PostgreSQL connection per task, about a quarter of a saga worker's time) unless
CELERY_DB_REUSE_MAX is set, which the chassis settings do; before each task the
chassis then applies Django's own rules (CONN_MAX_AGE, CONN_HEALTH_CHECKS, a
connection left broken by an error) as a request would.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from celery import Celery
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
        import ecs_logging

        from ._logging import RequestContextFilter

        self.formatter = ecs_logging.StdlibFormatter(exclude_fields=["process", "log.origin", "log.original"])
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


def create_celery_app(service: str, settings_module: str = "config.settings") -> Celery:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    app = Celery(service)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()
    return app
