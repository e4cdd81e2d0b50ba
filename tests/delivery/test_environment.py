"""Every variable compose and the chart give a process is one that process reads: a
setting nothing reads is a setting an operator changes for nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _environments import ProcessEnvironment, compose_environments, helm_environments, variables_read
from _repo import ROOT

# Read when the process starts serving its metrics (a Celery worker once it is
# connected to its broker, a relay's or consumer's loop once it runs), which the
# recording does not reach: checked in the chassis's source instead.
READ_WHEN_SERVING = {
    "COMPTOIR_METRICS_PORT": ROOT / "libs/comptoir/src/comptoir/_metrics.py",
    "COMPTOIR_METRICS_HOST": ROOT / "libs/comptoir/src/comptoir/_metrics.py",
}

PROCESSES = compose_environments() + helm_environments()


def test_compose_and_the_chart_give_every_kind_of_process_an_environment() -> None:
    kinds = {(p.source, p.process) for p in PROCESSES}
    for source in ("compose", "helm"):
        assert {(source, k) for k in ("web", "worker", "beat", "relay", "consumer", "migrate")} <= kinds


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.id)
def test_every_variable_given_to_a_process_is_read(process: ProcessEnvironment, tmp_path: Path) -> None:
    read = variables_read(process, tmp_path)
    unread = sorted(set(process.env) - read - set(READ_WHEN_SERVING))
    assert unread == [], f"{process.id} ({process.service} {process.process}) never reads {unread}"


def test_the_variables_read_when_serving_are_read_by_the_chassis() -> None:
    for name, source in READ_WHEN_SERVING.items():
        text = source.read_text()
        constant = re.search(rf'^(\w+) = "{name}"$', text, re.MULTILINE)
        reads = [rf'os\.environ\.get\("{name}"']
        if constant:
            reads.append(rf"os\.environ\.get\({constant.group(1)}\)")
        assert any(re.search(pattern, text) for pattern in reads), f"{source} does not read {name}"
