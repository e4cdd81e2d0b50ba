"""Every variable compose and the chart give a process is one that process reads: a
setting nothing reads is a setting an operator changes for nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from _environments import ProcessEnvironment, compose_environments, helm_environments, variables_read

# Read by `manage.py create_topics` through the topic declarations (not by every
# process), and sized per deployment on purpose: left out of this check.
NOT_CHECKED = frozenset({"COMPTOIR_EVENT_TOPIC_PARTITIONS", "COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR"})

PROCESSES = compose_environments() + helm_environments()


def test_compose_and_the_chart_give_every_kind_of_process_an_environment() -> None:
    kinds = {(p.source, p.process) for p in PROCESSES}
    for source in ("compose", "helm"):
        assert {(source, k) for k in ("web", "worker", "beat", "relay", "consumer", "migrate")} <= kinds


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.id)
def test_every_variable_given_to_a_process_is_read(process: ProcessEnvironment, tmp_path: Path) -> None:
    read = variables_read(process, tmp_path)
    unread = sorted(set(process.env) - read - NOT_CHECKED)
    assert unread == [], f"{process.id} ({process.service} {process.process}) never reads {unread}"
