"""One port table (comptoir.ports) for the devstack, the chassis and the gateway: each
of them, left to its defaults, finds every service where the table says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from comptoir import ports, service_urls

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTES = REPO_ROOT / "services" / "api_gateway" / "gateway" / "routes.yaml"


def test_the_devstack_starts_every_web_process_on_the_table_s_port() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMPTOIR_")}
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from devstack._config import SERVICE_PORTS as p; print(json.dumps(p))",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert list(json.loads(printed).items()) == list(ports.SERVICE_PORTS.items())


def test_the_chassis_looks_for_every_service_at_the_table_s_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ports.DJANGO_SERVICES:
        monkeypatch.delenv(f"{name.upper()}_URL", raising=False)
    assert service_urls() == {
        f"{name.upper()}_URL": f"http://127.0.0.1:{ports.SERVICE_PORTS[name]}"
        for name in ports.DJANGO_SERVICES
    }


def test_the_gateway_routes_to_every_service_at_the_table_s_port() -> None:
    upstreams = yaml.safe_load(ROUTES.read_text())["upstreams"]
    assert sorted(upstreams) == sorted(ports.DJANGO_SERVICES)
    for name, upstream in upstreams.items():
        assert upstream["url"] == f"http://127.0.0.1:{ports.SERVICE_PORTS[name]}", name
