"""gunicorn's own lines in ECS JSON, like every other line of a service.

A service's `config/gunicorn.py` (gunicorn's `-c` file) is:

    from comptoir.gunicorn import gunicorn_settings
    globals().update(gunicorn_settings("order_service"))

Its master's and workers' lines ("Booting worker", "Worker timeout"...) go
through the chassis' logging configuration (ecs-logging's formatter, the
request-context filter), and the access line is one ECS record per request
with the ECS HTTP fields: `http.request.method`, `url.path`, `url.query`,
`http.response.status_code`, `http.response.body.bytes`, `event.duration`
(nanoseconds), `client.ip`, `user_agent.original`, and the request's
`http.request.id`, `trace.id`, `span.id` and `user.id`, which
`RequestIdMiddleware` leaves in the WSGI environ (the request's context is gone
by the time gunicorn writes the line).
"""

from __future__ import annotations

import datetime
import gc
import os
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]  # gunicorn ships no types

from ._logging import logging_config

# Keys of the WSGI environ (Django's request.META) the middleware fills.
ENVIRON_FIELDS = {
    "comptoir.request_id": "http.request.id",
    "comptoir.trace_id": "trace.id",
    "comptoir.span_id": "span.id",
    "comptoir.user_id": "user.id",
}

# A worker touches its heartbeat file (gunicorn's worker_tmp_dir) on every turn of
# its loop: kept in memory, as the images' command lines have it, so the devstack
# runs its web processes as they are shipped (on this project's disks the touch
# measured no CPU difference either way).
SHARED_MEMORY_DIR = "/dev/shm"  # noqa: S108 - a folder in memory, not a temporary file name


def gunicorn_settings(service: str, level: str = "INFO") -> dict[str, Any]:
    """gunicorn settings (a `-c` file's globals) that log ECS JSON to stdout as `service`."""
    config = logging_config(service, level)
    # gunicorn's loggers keep no handler of their own: their records reach the
    # root's ECS handler, which Django's LOGGING later replaces with the same.
    config["loggers"].update(
        {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        }
    )
    settings: dict[str, Any] = {
        "logger_class": EcsAccessLogger,
        "logconfig_dict": config,
        "loglevel": level.lower(),
        "pre_fork": _freeze_loaded_objects,
    }
    if os.path.isdir(SHARED_MEMORY_DIR):
        settings["worker_tmp_dir"] = SHARED_MEMORY_DIR
    return settings


def _freeze_loaded_objects(server: Any, worker: Any) -> None:
    """With `--preload` the workers share the master's pages of the loaded
    application until something writes to them; the cyclic garbage collector
    writes to every object it visits. Moving what is loaded now out of its reach
    (`gc.freeze`) keeps those pages shared, so each worker's memory stays its own
    work, not a copy of the application. Without preload there is little to freeze."""
    gc.freeze()


class EcsAccessLogger(Logger):  # type: ignore[misc]  # an untyped base
    """gunicorn's logger whose access line is an ECS record (fields, not a format string)."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta) -> None:
        if not self.access_log_enabled:
            return
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "")
        status = resp.status
        status_code = int(str(status).split(None, 1)[0]) if status else 0
        fields: dict[str, Any] = {
            "http.request.method": method,
            "url.path": path,
            "http.response.status_code": status_code,
            "event.duration": (request_time.days * 86400 + request_time.seconds) * 1_000_000_000
            + request_time.microseconds * 1000,
        }
        if environ.get("QUERY_STRING"):
            fields["url.query"] = environ["QUERY_STRING"]
        if getattr(resp, "sent", None) is not None:
            fields["http.response.body.bytes"] = resp.sent
        protocol = str(environ.get("SERVER_PROTOCOL", ""))
        if protocol.startswith("HTTP/"):
            fields["http.version"] = protocol[5:]
        if environ.get("REMOTE_ADDR"):
            fields["client.ip"] = environ["REMOTE_ADDR"]
        if environ.get("HTTP_USER_AGENT"):
            fields["user_agent.original"] = environ["HTTP_USER_AGENT"]
        for key, field in ENVIRON_FIELDS.items():
            if environ.get(key):
                fields[field] = environ[key]
        try:
            self.access_log.info("%s %s %s", method, path, status_code, extra=fields)
        except Exception:  # noqa: BLE001 - as gunicorn's own: a bad line must not fail the request
            self.exception("access log line failed")
