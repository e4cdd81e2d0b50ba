"""Each service's README lists what its contracts say it serves, produces and consumes.

The facts come from the committed contracts (the OpenAPI document the code
generates, the event catalog) and the service's Procfile, so a route, an event
or a process added without its line in the README fails here, and so does a
README row naming a route that no longer exists.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from check_openapi import DJANGO_SERVICES, HTTP_METHODS, OPENAPI_DIR, REPO

CATALOG = json.loads((REPO / "contracts" / "events" / "catalog.json").read_text())["event_types"]
# A README route row: `| METHOD | `path` | ...`.
ROUTE_ROW = re.compile(r"^\|\s*([A-Z]+)\s*\|\s*`(/[^`]*)`\s*\|", re.MULTILINE)


def _readme(service: str) -> str:
    return (REPO / "services" / service / "README.md").read_text()


def _operations(service: str) -> set[tuple[str, str]]:
    document = yaml.safe_load((OPENAPI_DIR / f"{service}.yaml").read_text())
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _chassis_operations() -> set[tuple[str, str]]:
    """The operations routes every service has from the chassis, under `/api/ops/<service>/`."""
    per_service = [
        {
            (method, path.replace(f"/api/ops/{service}/", "/api/ops/{service}/"))
            for method, path in _operations(service)
        }
        for service in DJANGO_SERVICES
    ]
    return set.intersection(*per_service)


def _own_operations(service: str) -> set[tuple[str, str]]:
    chassis = _chassis_operations()
    return {
        (method, path)
        for method, path in _operations(service)
        if (method, path.replace(f"/api/ops/{service}/", "/api/ops/{service}/")) not in chassis
    }


@pytest.mark.parametrize("service", DJANGO_SERVICES)
def test_readme_lists_every_route_of_the_service_and_no_other(service: str) -> None:
    listed = set(ROUTE_ROW.findall(_readme(service)))
    own = _own_operations(service)
    assert own, f"{service} documents no route of its own"
    assert sorted(own - listed) == [], f"routes missing from services/{service}/README.md"
    assert sorted(listed - own) == [], f"services/{service}/README.md lists routes the service does not serve"


@pytest.mark.parametrize("service", DJANGO_SERVICES)
def test_readme_lists_every_event_the_service_produces_and_consumes_with_its_topic(service: str) -> None:
    lines = _readme(service).splitlines()
    expected = {
        (event_type, spec["topic"])
        for event_type, spec in CATALOG.items()
        if spec["producer"] == service or service in spec["consumers"]
    }
    missing = sorted(
        (event_type, topic)
        for event_type, topic in expected
        if not any(f"`{event_type}`" in line and f"`{topic}`" in line for line in lines)
    )
    assert missing == [], f"events missing from services/{service}/README.md (event and topic on one line)"


@pytest.mark.parametrize("service", DJANGO_SERVICES)
def test_readme_lists_every_process_of_the_procfile(service: str) -> None:
    procfile = (REPO / "services" / service / "Procfile").read_text().splitlines()
    kinds = [line.split(":", 1)[0] for line in procfile if line.strip() and not line.startswith("#")]
    section = _readme(service).split("## Processes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z]+)` \|", section, flags=re.M)
    assert kinds
    assert sorted(listed) == sorted(kinds), f"{service}: README lists {listed}, Procfile has {kinds}"
