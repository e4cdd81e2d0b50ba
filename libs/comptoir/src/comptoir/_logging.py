"""Logs: one JSON object per line in Elastic Common Schema (ecs-logging's format,
written by `EcsFormatter`: the same lines, built in one pass).

Every record carries `@timestamp`, `log.level`, `log.logger`, `message`,
`service.name`, `http.request.id` (the id of the HTTP request, or the
correlation id of the event being handled), `trace.id` and `span.id` (the
current OpenTelemetry span) and `user.id` (the authenticated caller:
`user:<id>` or `service:<name>`) when known, so lines from every process can be
shipped to one index and joined on the trace.

Secrets never reach the output: bearer tokens, JWTs and password/secret/token
values in messages and extras are replaced with `[REDACTED]` before formatting.

Nothing else reaches the output either: `configure_logging` (Django's
LOGGING_CONFIG, and the Celery processes') also routes Python warnings and
uncaught exceptions through the same handler, so a process's stdout holds ECS
lines only. gunicorn's own lines go the same way: see `comptoir.gunicorn`.
"""

from __future__ import annotations

import functools
import logging
import logging.config
import re
import sys
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import ecs_logging

request_id_var: ContextVar[str | None] = ContextVar("comptoir_request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("comptoir_user_id", default=None)

REDACTED = "[REDACTED]"
_SECRET_PATTERNS = [
    # Authorization header values and bare JWTs (three base64url parts, the first `{"`).
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # key=value / "key": "value" pairs whose key names a secret.
    (
        re.compile(
            r"""(?i)(["']?[\w-]*(?:password|passwd|secret|token|api[_-]?key|authorization|refresh|access)"""
            r"""[\w-]*["']?\s*[:=]\s*)(["'])(?:(?!\2).)*\2"""
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
    (
        re.compile(r"""(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key)[\w-]*=)[^\s&,;'"]+"""),
        r"\1" + REDACTED,
    ),
]
_SECRET_KEY = re.compile(r"(?i)password|passwd|secret|token|api[_-]?key|authorization|cookie")
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


# Every secret pattern above needs one of these words: a text without any (most
# of them: paths, addresses, ids) is returned after one search instead of four
# substitutions. A superset on purpose (case-insensitive): it only decides when to look.
_MAY_HOLD_SECRET = re.compile(
    r"(?i)bearer|basic|eyJ|passw|secret|token|api[_-]?key|authorization|refresh|access"
)


def redact(text: str) -> str:
    if _MAY_HOLD_SECRET.search(text) is None:
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=4096)
def _names_a_secret(key: str) -> bool:
    """Whether a field's name says its value is a secret (names repeat on every line: cached)."""
    return _SECRET_KEY.search(key) is not None


def _redact_value(key: str, value: Any) -> Any:
    if value is None:
        return value
    if _names_a_secret(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


class RequestContextFilter(logging.Filter):
    """Adds the ECS context fields to every record and removes secrets from it.

    A field the record already carries (given with `extra=`, as gunicorn's access
    line does once the request's context is gone) is kept."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        fields["service.name"] = self.service
        if fields.get("http.request.id") is None:
            fields["http.request.id"] = request_id_var.get()
        user_id = user_id_var.get()
        if user_id is not None and fields.get("user.id") is None:
            fields["user.id"] = user_id
        if fields.get("trace.id") is None:
            trace_id, span_id = _current_trace_ids()
            if trace_id is not None:
                fields["trace.id"] = trace_id
                fields["span.id"] = span_id
        # The message once, redacted (args may hold a token or a request body).
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        for key in [k for k in fields if k not in _STANDARD_ATTRIBUTES]:
            fields[key] = _redact_value(key, fields[key])
        return True


# The fields `ecs_logging.StdlibFormatter` takes from every record (besides the
# extras), each with the attribute it is read from (None: computed).
_RECORD_FIELDS: tuple[tuple[str, str | None], ...] = (
    ("@timestamp", None),
    ("ecs.version", None),
    ("log.level", None),
    ("log.origin.function", "funcName"),
    ("log.origin.file.line", "lineno"),
    ("log.origin.file.name", "filename"),
    ("log.original", None),
    ("log.logger", "name"),
    ("process.pid", "process"),
    ("process.name", "processName"),
    ("process.thread.id", "thread"),
    ("process.thread.name", "threadName"),
)


class EcsFormatter(ecs_logging.StdlibFormatter):
    """ecs-logging's formatter, with the same output, built in one pass for an
    ordinary record.

    Its `format_to_ecs` builds every line generically (a table of extractors,
    each field split into nested dictionaries and merged into the result), which
    is most of what a log line costs, and a web process writes one per request.
    A record without an exception, a stack or anything that needs the
    library's care (a nested mapping, a field that clashes with another) is
    built here into the same dictionary; any other goes to the library."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._record_fields = [
            (field, attribute, field.split("."))
            for field, attribute in _RECORD_FIELDS
            if not self._is_field_excluded(field)
        ]

    def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
        if record.exc_info or record.stack_info or self._extra is not None:
            return super().format_to_ecs(record)
        fields = record.__dict__
        message = record.getMessage()
        result: dict[str, Any] = {}
        for field, attribute, path in self._record_fields:
            if attribute is not None:
                value = fields.get(attribute)
            elif field == "@timestamp":
                value = self._record_timestamp(record)
            elif field == "ecs.version":
                result[field] = ecs_logging.ECS_VERSION  # the one field kept dotted
                continue
            elif field == "log.level":
                value = record.levelname.lower() if record.levelname else None
            else:  # log.original
                value = message
            if value is not None and not _put(result, path, value):
                return super().format_to_ecs(record)
        fields["message"] = message  # as the library leaves it
        for key in fields.keys() - self._LOGRECORD_DICT:
            value = fields[key]
            if value is None:
                continue
            if isinstance(value, Mapping) or key.startswith("elasticapm"):
                return super().format_to_ecs(record)
            if self._is_field_excluded(key):
                continue
            if not _put(result, key.split("."), value):
                return super().format_to_ecs(record)
        if not self._is_field_excluded("message"):
            result.setdefault("message", message)
        return result


def _put(result: dict[str, Any], path: list[str], value: Any) -> bool:
    """Sets `value` at `path` in nested dictionaries; False where something is there already."""
    node = result
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


def _current_trace_ids() -> tuple[str | None, str | None]:
    try:
        from ._tracing import current_ids
    except ImportError:  # pragma: no cover - OpenTelemetry is a chassis dependency
        return None, None
    return current_ids()


def logging_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping that writes ECS JSON lines to stdout."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "comptoir._logging.RequestContextFilter", "service": service},
        },
        "formatters": {
            "ecs": {
                "()": "comptoir._logging.EcsFormatter",
                # The process/thread/origin fields add little and cost bytes on every line.
                "exclude_fields": ["process", "log.origin", "log.original"],
            },
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "ecs",
                "filters": ["context"],
            },
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Django's default handlers for these (plain text when DEBUG, mail to
            # ADMINS) are replaced: their records reach the root's handler.
            "django": {"level": "INFO", "handlers": [], "propagate": True},
            "django.server": {"level": "WARNING"},
            "django.db.backends": {"level": "INFO"},
            # Python warnings, once `configure_logging` captured them.
            "py.warnings": {"level": "WARNING"},
            # A call between services is logged once, by the service that answers
            # it (its access line, with the same trace and request ids): urllib3,
            # the ServiceClient's pool, writes its request lines at DEBUG only. A
            # call that times out or finds nobody is a warning of comptoir.http,
            # which the answering side cannot log.
            # Celery writes two lines per task at INFO ("received", "succeeded
            # in 0.01s") and one per retry: what comptoir_celery_tasks_total
            # (by outcome) and comptoir_celery_task_duration_seconds count,
            # and what the tasks log themselves when it matters (a saga step
            # failed, a mail's delivery failed). Shown at LOG_LEVEL=DEBUG;
            # failures (ERROR) always.
            "celery.worker.strategy": {"level": "DEBUG" if level == "DEBUG" else "WARNING"},
            "celery.app.trace": {"level": "DEBUG" if level == "DEBUG" else "WARNING"},
        },
    }


def configure_logging(config: dict[str, Any]) -> None:
    """Applies a `logging_config()` mapping, and sends what would bypass it through
    it too: warnings (`warnings.warn` prints to stderr) and uncaught exceptions
    (the interpreter prints their traceback to stderr) become ECS records.

    Django calls it with LOGGING (the chassis sets LOGGING_CONFIG to it)."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("comptoir").critical("uncaught exception", exc_info=(kind, error, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("comptoir").critical(
        "uncaught exception in thread %s",
        thread,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
