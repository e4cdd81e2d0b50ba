"""The chaos suite runs against the whole platform started by the devstack
(`make chaos`, or `make up` then `pytest tests/chaos`).

CHAOS_SCOPE=fast (the default, what `make test` runs) keeps the scenarios marked
`fast`; CHAOS_SCOPE=all (`make chaos`) runs every one. Scenarios marked
`kafka_cluster` run only on the devstack's 3-broker cluster (COMPTOIR_KAFKA_BROKERS=3),
the others only on the single broker. The result rows of the session are printed
as a table at the end and kept in the reports folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from harness import RESULTS, TABLE, Devstack, Supervisor, log, read_results, table
from platform_client import Platform, ready_platform

SCOPE = os.environ.get("CHAOS_SCOPE", "fast")


# The devstack's Kafka layout: the scenarios marked `kafka_cluster` run on the 3-broker
# cluster only (`make chaos` runs them in a second pass on it), every other one on the
# single broker only.
CLUSTER = os.environ.get("COMPTOIR_KAFKA_BROKERS", "1") == "3"


def _selected(item: pytest.Item) -> bool:
    if (item.get_closest_marker("kafka_cluster") is not None) != CLUSTER:
        return False
    return SCOPE == "all" or item.get_closest_marker("fast") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept = [item for item in items if _selected(item)]
    dropped = [item for item in items if not _selected(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionstart(session: pytest.Session) -> None:
    # CHAOS_KEEP_RESULTS=1: a second pass (the cluster's) adds its rows to the first's table.
    if os.environ.get("CHAOS_KEEP_RESULTS") != "1":
        RESULTS.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = read_results()
    if not rows:
        return
    text = table(rows)
    TABLE.write_text(text)
    terminalreporter.write_sep("=", f"chaos results (kept in {TABLE})")
    terminalreporter.write(text)


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    client = ready_platform()
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def devstack() -> Iterator[Devstack]:
    stack = Devstack()
    yield stack
    # Leave order_service.web as the suite found it (the default saga mode).
    if stack.overrides:
        overridden = list(stack.overrides)
        stack.overrides.clear()
        for name in overridden:
            log(f"restarting {name} with its usual environment")
            stack.restart(name)


@pytest.fixture(scope="session")
def supervisor(devstack: Devstack) -> Iterator[Supervisor]:
    with Supervisor(devstack) as running:
        yield running
