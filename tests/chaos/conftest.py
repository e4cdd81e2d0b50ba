"""The chaos suite runs against the whole platform started by the devstack
(`make chaos`, or `make up` then `pytest tests/chaos`).

CHAOS_SCOPE=fast (the default, what `make test` runs) keeps the scenarios marked
`fast`; CHAOS_SCOPE=all (`make chaos`) runs every one. The result rows of the
session are printed as a table at the end and kept in the reports folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from harness import RESULTS, TABLE, Devstack, Supervisor, log, read_results, table
from platform_client import Platform, ready_platform

SCOPE = os.environ.get("CHAOS_SCOPE", "fast")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SCOPE == "all":
        return
    kept = [item for item in items if item.get_closest_marker("fast") is not None]
    dropped = [item for item in items if item.get_closest_marker("fast") is None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionstart(session: pytest.Session) -> None:
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
