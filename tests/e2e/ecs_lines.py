"""The rule every platform process's log follows: each line is one ECS JSON object.

`line_problem` says what is wrong with one line (None when it is a record with
the ECS base fields); `log_problems` names the file and line of each bad one.
The devstack writes every process's output to `.devstack/logs/<name>.log`;
`platform_logs` sorts those files into the platform's own processes (one per
Procfile line) and the rest, which must be known and excluded for a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Present (and not empty) in every record ecs-logging writes.
BASE_FIELDS = ("@timestamp", "log.level", "message", "service.name", "ecs.version")

# Logs in the devstack's folder that no platform Python process writes, and why.
NOT_OURS = {
    "postgres": "PostgreSQL's server log, in its own format",
    "kafka": "the Kafka broker's log4j output",
    "redis": "redis-server's log",
    "smtp": "the SMTP sink standing in for a mail provider (aiosmtpd)",
    "prometheus": "Prometheus' own log",
    "traces": "the trace backend (Jaeger, or the OTLP sink standing in for it)",
}
# `<service>.manage.log`: the devstack's transcript of the one-off commands it runs
# before starting a service (migrate, create_topics, seed_demo), whose output is
# a report to whoever runs them, not the log of a running process.
TRANSCRIPT_SUFFIX = ".manage"


def field(record: dict[str, Any], dotted: str) -> Any:
    """The value of an ECS field, written flat (`"log.level"`) or nested (`"service": {"name"}`)."""
    if dotted in record:
        return record[dotted]
    parts = dotted.split(".")
    for cut in range(1, len(parts)):
        head = ".".join(parts[:cut])
        inner = record.get(head)
        if isinstance(inner, dict):
            value = field(inner, ".".join(parts[cut:]))
            if value is not None:
                return value
    return None


def line_problem(line: str) -> str | None:
    """What keeps `line` from being an ECS record, or None."""
    try:
        record = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [name for name in BASE_FIELDS if field(record, name) in (None, "")]
    if missing:
        return f"no {', '.join(missing)}"
    return None


def log_problems(path: Path) -> tuple[int, list[str]]:
    """(how many lines are ECS records, `<file>:<line>: <problem>: <line>` for each one that is not)."""
    good = 0
    problems = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        problem = line_problem(line)
        if problem is None:
            good += 1
        else:
            problems.append(f"{path.name}:{number}: {problem}: {line[:300]!r}")
    return good, problems


@dataclass
class PlatformLogs:
    ours: dict[str, Path]  # process name (`order_service.web`) -> its log
    missing: list[str]  # platform processes without a log
    unknown: list[str]  # logs that are neither a platform process's nor excluded


def platform_logs(log_dir: Path, processes: list[str]) -> PlatformLogs:
    logs = {path.name.removesuffix(".log"): path for path in sorted(log_dir.glob("*.log"))}
    ours = {name: logs[name] for name in processes if name in logs}
    unknown = [
        name
        for name in logs
        if name not in ours and name not in NOT_OURS and not name.endswith(TRANSCRIPT_SUFFIX)
    ]
    return PlatformLogs(ours=ours, missing=[name for name in processes if name not in logs], unknown=unknown)
