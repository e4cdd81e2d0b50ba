"""The CPU of a log line: what every process pays per line, and a web process per request.

    .venv/bin/python bench/logs/run.py [--lines 20000] [--rounds 5]

No platform needed. Side by side in one run, the best of --rounds rounds each
(µs of CPU per line, `time.process_time`), written to a buffer instead of stdout:

- the ECS line of a gunicorn access record (the chassis' `EcsAccessLogger.access`:
  the record, the request-context filter, the formatter), as configured by
  `comptoir.gunicorn.gunicorn_settings`, and the same with ecs-logging's formatter;
- the formatter alone on the same record: the chassis' `EcsFormatter` against
  ecs-logging's `StdlibFormatter` (the same output; `libs/comptoir/tests/test_logging.py`
  holds them to it);
- an ordinary line with one extra field (`logger.info("order confirmed", extra=...)`).

Raw figures go to bench/logs/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import io
import json
import logging
import logging.handlers
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ecs_logging
from gunicorn.config import Config  # type: ignore[import-untyped]  # gunicorn ships no types

from comptoir._logging import EcsFormatter
from comptoir.gunicorn import EcsAccessLogger, gunicorn_settings

HERE = Path(__file__).resolve().parent
EXCLUDED = ["process", "log.origin", "log.original"]
ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/api/products/6/",
    "QUERY_STRING": "",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_USER_AGENT": "python-httpx/0.28.1",
    "comptoir.request_id": "4b1f0c0e6a6d4a3fa0b1c2d3e4f5a6b7",
    "comptoir.trace_id": "0af7651916cd43dd8448eb211c80319c",
    "comptoir.span_id": "b7ad6b7169203331",
    "comptoir.user_id": "service:order_service",
}


class _Response:
    status = "200 OK"
    sent = 512


def _gunicorn_logger() -> tuple[EcsAccessLogger, logging.Handler, io.StringIO]:
    """gunicorn's logger as a worker builds it from the chassis' settings (`-c
    config/gunicorn.py`), and the handler every line goes through, writing to a buffer."""
    cfg = Config()
    for name, value in gunicorn_settings("product_service").items():
        cfg.set(name, value)
    access = EcsAccessLogger(cfg)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    return access, handler, buffer


def best_us(work: Callable[[], object], lines: int, rounds: int, buffer: io.StringIO) -> float:
    """The cheapest round's CPU per call, in µs."""
    for _ in range(min(lines, 1000)):
        work()
    best = float("inf")
    for _ in range(rounds):
        buffer.seek(0)
        buffer.truncate()
        started = time.process_time()
        for _ in range(lines):
            work()
        best = min(best, (time.process_time() - started) / lines * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.lines < 1 or args.rounds < 1:
        parser.error("--lines and --rounds must be at least 1")

    access, handler, buffer = _gunicorn_logger()
    duration = datetime.timedelta(microseconds=1234)
    logger = logging.getLogger("orders.orchestration")

    # One access record as the handler's filter leaves it, for the formatters alone.
    capture = logging.handlers.BufferingHandler(capacity=10)
    capture.addFilter(handler.filters[0])
    access.access_log.addHandler(capture)
    access.access(_Response, None, ENVIRON, duration)
    access.access_log.removeHandler(capture)
    record = capture.buffer[0]
    ours, library = (
        EcsFormatter(exclude_fields=EXCLUDED),
        ecs_logging.StdlibFormatter(exclude_fields=EXCLUDED),
    )
    if ours.format(copy.copy(record)) != library.format(copy.copy(record)):
        raise SystemExit("the chassis' formatter and ecs-logging's disagree on the access line")

    def access_line() -> None:
        access.access(_Response, None, ENVIRON, duration)

    chassis_formatter = handler.formatter
    handler.setFormatter(library)
    with_library = best_us(access_line, args.lines, args.rounds, buffer)
    handler.setFormatter(chassis_formatter)
    figures: dict[str, Any] = {
        "access_line_us": best_us(access_line, args.lines, args.rounds, buffer),
        "access_line_with_ecs_logging_formatter_us": with_library,
        "formatter_us": {
            "chassis EcsFormatter": best_us(
                lambda: ours.format(copy.copy(record)), args.lines, args.rounds, buffer
            ),
            "ecs-logging StdlibFormatter": best_us(
                lambda: library.format(copy.copy(record)), args.lines, args.rounds, buffer
            ),
            "copy of the record (subtract)": best_us(
                lambda: copy.copy(record), args.lines, args.rounds, buffer
            ),
        },
        "ordinary_line_us": best_us(
            lambda: logger.warning("order confirmed", extra={"order_id": 42}), args.lines, args.rounds, buffer
        ),
    }
    formatter = figures["formatter_us"]
    figures["formatter_ratio"] = round(
        (formatter["chassis EcsFormatter"] - formatter["copy of the record (subtract)"])
        / (formatter["ecs-logging StdlibFormatter"] - formatter["copy of the record (subtract)"]),
        3,
    )
    print(
        f"access line (EcsAccessLogger.access, filter and formatter): {figures['access_line_us']:.1f} µs;"
        f" with ecs-logging's formatter: {with_library:.1f} µs"
    )
    for name, value in formatter.items():
        print(f"  formatter, {name}: {value:.1f} µs")
    print(f"  chassis / ecs-logging, the formatting alone: {figures['formatter_ratio']:.2f}")
    print(f"ordinary line with one extra field: {figures['ordinary_line_us']:.1f} µs")
    out = HERE / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), **figures}, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(HERE.parents[1])}")


if __name__ == "__main__":
    main()
