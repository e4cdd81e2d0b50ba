"""The scenario suite runs against the whole platform started by the devstack
(`make e2e`, or `make up` then `pytest tests/e2e`), once per saga mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from platform_client import Platform, devstack, processes_of, ready_platform

SAGA_MODES = ["orchestration", "choreography"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_every_scenario` (reading what the whole suite left behind,
    e.g. every process's log) run last, whatever their file's name."""
    items.sort(key=lambda item: item.get_closest_marker("after_every_scenario") is not None)


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    client = ready_platform()
    yield client
    client.http.close()


@pytest.fixture(scope="session", params=SAGA_MODES)
def saga_mode(request: pytest.FixtureRequest, platform: Platform) -> str:
    """Restarts order_service's processes with SAGA_MODE set: the setting under test."""
    mode: str = request.param
    for name in processes_of("order_service"):
        devstack("restart", name, env={"SAGA_MODE": mode})
    return mode
