from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator

import ecs_logging
import pytest
from django.test import Client
from opentelemetry import trace

from comptoir import logging_config, request_id_var
from comptoir._logging import EcsFormatter, user_id_var
from comptoir.testing import TokenFactory as Tokens


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The chassis' logging config, writing to a buffer instead of stdout."""
    logging.config.dictConfig(logging_config("order_service"))
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    logging.config.dictConfig(logging_config("comptoir_chassis", "WARNING"))


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_records_are_ecs_json_lines_with_service_request_trace_and_user(log_lines: io.StringIO) -> None:
    tracer = trace.get_tracer("test")
    request_token = request_id_var.set("req-42")
    user_token = user_id_var.set("user:7")
    try:
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("orders.saga").warning("stock %s", "reserved")
            context = span.get_span_context()
    finally:
        user_id_var.reset(user_token)
        request_id_var.reset(request_token)
    logging.getLogger("orders.saga").info("outside a request")

    first, second = _records(log_lines)
    assert first["message"] == "stock reserved"
    assert first["log.level"] == "warning"
    assert first["log"] == {"logger": "orders.saga"}
    assert first["service"] == {"name": "order_service"}
    assert first["http"] == {"request": {"id": "req-42"}}
    assert first["user"] == {"id": "user:7"}
    assert first["trace"] == {"id": format(context.trace_id, "032x")}
    assert first["span"] == {"id": format(context.span_id, "016x")}
    assert first["ecs.version"] == "1.6.0"
    assert "@timestamp" in first
    assert second["message"] == "outside a request"
    assert "http" not in second  # ECS leaves out what is unknown
    assert "trace" not in second
    assert "user" not in second


PASSWORD = "Correct-Horse-Battery-9"


def test_no_password_token_or_secret_is_ever_logged(
    log_lines: io.StringIO, client: Client, tokens: Tokens, db: None
) -> None:
    token = tokens.user(7)
    service_token = tokens.service("order_service")
    log = logging.getLogger("orders.views")
    # A request with an Authorization header and a login body, answered 404 and 500
    # (django.request logs both) and 201.
    missing = client.post(
        "/no/such/login/",
        {"email": "a@b.c", "password": PASSWORD},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    boom = client.get("/boom/", headers={"Authorization": f"Bearer {service_token}"})
    created = client.post(
        "/notes/",
        {"title": "t", "body": PASSWORD},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (missing.status_code, boom.status_code, created.status_code) == (404, 500, 201)
    # Careless calls: the values must still not come out.
    log.warning("login failed for %s", {"email": "a@b.c", "password": PASSWORD})
    log.warning("calling upstream with headers %s", {"Authorization": f"Bearer {token}"})
    log.warning("got token %s", token)
    log.warning("form password=%s&client_secret=%s", PASSWORD, "s3cr3t-value")
    log.info("login", extra={"password": PASSWORD, "body": {"refresh": token}})
    log.info("second factor", extra={"otp_token": 918273, "api_key": 6.5e9})  # numbers too

    output = log_lines.getvalue()
    assert len(output.splitlines()) >= 7
    numbers = ("918273", "6500000000")
    for secret in (PASSWORD, token, service_token, token.split(".")[1], "s3cr3t-value", *numbers):
        assert secret not in output
    assert output.count("[REDACTED]") >= 8
    assert "login failed for" in output  # the lines are there, only the values are gone


def test_warnings_and_uncaught_exceptions_become_ecs_records() -> None:
    import sys
    import threading
    import warnings

    from comptoir._logging import configure_logging

    logging.captureWarnings(False)  # Django's set-up captured them already, pytest restored its own
    configure_logging(logging_config("order_service"))
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a deprecated call", DeprecationWarning, stacklevel=1)
        try:
            raise RuntimeError("nobody caught me")
        except RuntimeError as error:
            sys.excepthook(RuntimeError, error, error.__traceback__)
    finally:
        logging.captureWarnings(False)
        sys.excepthook = sys.__excepthook__
        threading.excepthook = threading.__excepthook__
        logging.config.dictConfig(logging_config("comptoir_chassis", "WARNING"))

    warning, uncaught = _records(stream)
    assert "DeprecationWarning: a deprecated call" in str(warning["message"])
    assert warning["log"] == {"logger": "py.warnings"}
    assert warning["service"] == {"name": "order_service"}
    assert uncaught["message"] == "uncaught exception"
    assert uncaught["log.level"] == "critical"
    details = uncaught["error"]
    assert isinstance(details, dict)
    assert details["type"] == "RuntimeError"
    assert details["message"] == "nobody caught me"


def test_celery_lines_per_task_are_left_to_the_metrics_unless_debugging(log_lines: io.StringIO) -> None:
    logging.getLogger("celery.worker.strategy").info("Task mailer.send_email[1] received")
    logging.getLogger("celery.app.trace").info("Task mailer.send_email[1] succeeded in 0.01s: 'SENT'")
    logging.getLogger("celery.app.trace").error("Task mailer.send_email[2] raised unexpected: OSError()")
    assert [record["message"] for record in _records(log_lines)] == [
        "Task mailer.send_email[2] raised unexpected: OSError()"
    ]

    logging.config.dictConfig(logging_config("email_service", "DEBUG"))
    debugging = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(debugging)
    logging.getLogger("celery.app.trace").info("Task mailer.send_email[3] succeeded in 0.01s: 'SENT'")
    assert [record["message"] for record in _records(debugging)] == [
        "Task mailer.send_email[3] succeeded in 0.01s: 'SENT'"
    ]


def _records_to_format() -> list[logging.LogRecord]:
    """Records of every shape a line takes: plain, with the access line's and the
    request context's dotted fields, numbers, None, unicode, an exception, a
    stack, a nested mapping, clashing fields."""

    def record(
        extra: dict[str, object] | None = None, *, level: int = logging.INFO, exc: bool = False
    ) -> logging.LogRecord:
        exc_info = None
        if exc:
            try:
                raise ValueError("boom")
            except ValueError:
                exc_info = sys.exc_info()
        made = logging.getLogger("orders.saga").makeRecord(
            "orders.saga", level, __file__, 12, "order %s %s", (7, "é"), exc_info, "fn", extra
        )
        return made

    access: dict[str, object] = {
        "http.request.method": "GET",
        "url.path": "/api/products/6/",
        "http.response.status_code": 200,
        "event.duration": 1_234_000,
        "http.response.body.bytes": 512,
        "client.ip": "127.0.0.1",
        "http.request.id": "req-1",
        "trace.id": "0af7651916cd43dd8448eb211c80319c",
        "span.id": "b7ad6b7169203331",
        "user.id": "service:order_service",
        "service.name": "product_service",
    }
    stacked = record(level=logging.WARNING)
    stacked.stack_info = "Stack (most recent call last):\n  File x"
    return [
        record(),
        record(access, level=logging.ERROR),
        record({"order_id": 7, "ratio": 0.5, "flag": True, "empty": None, "customer": "Zoë"}),
        record(access, exc=True),
        stacked,
        record({"details": {"a": 1, "b": {"c": "d"}}}),
        record({"http": "clash", "http.request.id": "x"}),
        record({"elasticapm_trace_id": "abc"}),
    ]


@pytest.mark.parametrize("exclude", [["process", "log.origin", "log.original"], [], ["message", "user"]])
def test_the_chassis_formatter_writes_what_ecs_logging_writes(exclude: list[str]) -> None:
    ours, library = EcsFormatter(exclude_fields=exclude), ecs_logging.StdlibFormatter(exclude_fields=exclude)
    for index, record in enumerate(_records_to_format()):
        try:
            expected: str | type[Exception] = library.format(copy.copy(record))
        except (TypeError, ValueError) as error:  # the library refuses clashing fields
            expected = type(error)
        if isinstance(expected, str):
            assert ours.format(copy.copy(record)) == expected, index
        else:
            with pytest.raises(expected):
                ours.format(copy.copy(record))
