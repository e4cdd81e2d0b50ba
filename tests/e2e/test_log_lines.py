"""Every line of every platform process's log is an ECS JSON object: checked on the
logs the whole suite's traffic left (this test runs after every scenario), and the
check itself on lines that must fail it."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import ecs_logging
import pytest
from ecs_lines import NOT_OURS, field, line_problem, log_problems, platform_logs
from platform_client import REPO_ROOT, Platform, processes_of

LOG_DIR = Path(os.environ.get("COMPTOIR_DEVSTACK_DIR", str(REPO_ROOT / ".devstack"))) / "logs"


def _services() -> list[str]:
    return sorted(path.parent.name for path in (REPO_ROOT / "services").glob("*/Procfile"))


def _ecs_line(message: str, **extra: object) -> str:
    """A line as the platform's processes write it: ecs-logging's formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ecs_logging.StdlibFormatter())
    logger = logging.Logger("ecs-lines-test")
    logger.addHandler(handler)
    logger.info(message, extra={"service.name": "order_service", **extra})
    return stream.getvalue().strip()


@pytest.mark.after_every_scenario
def test_every_line_of_every_platform_process_is_ecs_json(platform: Platform) -> None:
    processes = [name for service in _services() for name in processes_of(service)]
    logs = platform_logs(LOG_DIR, processes)

    assert logs.unknown == [], f"logs neither of a platform process nor excluded in NOT_OURS: {logs.unknown}"
    assert logs.missing == [], f"platform processes without a log in {LOG_DIR}: {logs.missing}"
    problems = []
    for path in logs.ours.values():
        good, bad = log_problems(path)
        assert good > 0, f"{path} holds no ECS record: the check would pass on nothing"
        problems += bad
    assert problems == [], f"{len(problems)} line(s) that are not ECS JSON:\n" + "\n".join(problems[:50])


def test_a_record_from_ecs_logging_passes() -> None:
    line = _ecs_line("GET /api/orders/ 200", **{"http.request.id": "abc"})

    assert line_problem(line) is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[2026-12-04 23:47:18 +0000] [6417] [INFO] Starting gunicorn 27.0.1", "not JSON"),
        ('127.0.0.1 - - [04/Dec/2026:23:47:26 +0000] "GET /health/live HTTP/1.1" 200 44', "not JSON"),
        ("INFO:     Started server process [6079]", "not JSON"),
        ("", "not JSON"),
        ('["a", "list"]', "not a JSON object"),
        ('{"time": "2026-12-04T23:47", "level": "INFO", "message": "request"}', "no @timestamp, log.level"),
    ],
)
def test_a_line_that_is_not_an_ecs_record_fails(line: str, problem: str) -> None:
    found = line_problem(line)

    assert found is not None
    assert found.startswith(problem)


def test_a_json_line_without_the_service_name_fails() -> None:
    record = json.loads(_ecs_line("relay: started"))
    del record["service"]

    assert line_problem(json.dumps(record)) == "no service.name"


def test_fields_are_found_flat_or_nested() -> None:
    record = {"log.level": "info", "service": {"name": "x"}, "http": {"request": {"id": "r"}}}

    assert field(record, "log.level") == "info"
    assert field(record, "service.name") == "x"
    assert field(record, "http.request.id") == "r"
    assert field(record, "trace.id") is None


def test_the_problems_name_the_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "order_service.web.log"
    log.write_text(f"{_ecs_line('one')}\nBooting worker with pid: 12\n{_ecs_line('two')}\n")

    good, problems = log_problems(log)

    assert good == 2
    assert problems == ["order_service.web.log:2: not JSON: 'Booting worker with pid: 12'"]


def test_logs_are_sorted_into_ours_excluded_and_unknown(tmp_path: Path) -> None:
    for name in ["order_service.web", "order_service.manage", "kafka", "postgres", "stray"]:
        (tmp_path / f"{name}.log").write_text("x\n")

    logs = platform_logs(tmp_path, ["order_service.web", "order_service.worker"])

    assert list(logs.ours) == ["order_service.web"]
    assert logs.missing == ["order_service.worker"]
    assert logs.unknown == ["stray"]
    assert set(NOT_OURS) >= {"kafka", "postgres"}
