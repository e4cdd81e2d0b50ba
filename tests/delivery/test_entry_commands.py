"""The images' commands exist: each service's production command (the Dockerfile's
CMD, with the Dockerfile's ENV) is started outside a container, from the service
folder as the image's WORKDIR, and must serve /health/live; the commands the
compose file and the chart give the other processes must exist too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _compose import load_model
from _repo import (
    ALL_SERVICES,
    DJANGO_SERVICES,
    FRONTEND,
    GATEWAY,
    ROOT,
    VENV_BIN,
    Dockerfile,
    free_port,
    port_open,
    run,
)

START_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 30.0
INFRA_PORTS = {
    "PostgreSQL": int(os.environ.get("COMPTOIR_PG_PORT", "5433")),
    "Redis": int(os.environ.get("COMPTOIR_REDIS_PORT", "6380")),
    "Kafka": int(os.environ.get("COMPTOIR_KAFKA_PORT", "9092")),
}


def service_dir(service: str) -> Path:
    return ROOT / "services" / service


def require_service(service: str) -> None:
    """Every service has the entry point its image runs: a missing one is a failure."""
    folder = service_dir(service)
    marker = folder / ("gateway/app.py" if service == GATEWAY else "manage.py")
    assert marker.exists(), f"{service}: no {marker.relative_to(folder)}, so no production command to run"


def image_environment(service: str, port: int) -> dict[str, str]:
    """The container's environment, pointed at the devstack and at a free port."""
    dockerfile = Dockerfile.read(service_dir(service) / "Dockerfile")
    env = dict(os.environ)
    for name, value in dockerfile.env().items():
        if name != "PATH":
            env[name] = value
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PORT"] = str(port)
    # One worker and loopback only, through the variables the image reads
    # (the command itself is run exactly as written in the Dockerfile).
    env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port} --workers 1"
    env["WEB_CONCURRENCY"] = "1"
    env["GATEWAY_HOST"] = "127.0.0.1"
    env["GATEWAY_WORKERS"] = "1"
    if service == GATEWAY:
        env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def get(url: str, *, within_s: float = 30.0) -> tuple[int, dict[str, Any]]:
    """GET url; a timed-out or refused attempt (a loaded machine) is retried for a while."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (TimeoutError, ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture
def serving(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int, list[str]]]:
    service: str = request.param
    require_service(service)
    command = json.loads(Dockerfile.read(service_dir(service) / "Dockerfile").final("CMD"))
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=service_dir(service),
            env=image_environment(service, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"{service}: {command} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                )
            if port_open(port):
                break
            time.sleep(0.2)
        else:
            pytest.fail(
                f"{service}: nothing listens on {port} after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            )
        yield service, port, command
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=5)


@pytest.mark.parametrize("serving", ALL_SERVICES, indirect=True)
def test_production_command_serves_health(serving: tuple[str, int, list[str]]) -> None:
    service, port, _ = serving
    status, body = get(f"http://127.0.0.1:{port}/health/live")
    assert status == 200
    assert body.get("status") == "ok"
    if service != GATEWAY:
        assert body["service"] == service
    down = [name for name, infra_port in INFRA_PORTS.items() if not port_open(infra_port)]
    if down or service in (GATEWAY, FRONTEND):
        # Readiness needs the devstack (and, for the gateway, every upstream; for the
        # frontend, the gateway).
        return
    # A loaded machine can make one check time out: poll for a while.
    deadline = time.monotonic() + READY_TIMEOUT_S
    status, body = get(f"http://127.0.0.1:{port}/health/ready")
    while status != 200 and time.monotonic() < deadline:
        time.sleep(1)
        status, body = get(f"http://127.0.0.1:{port}/health/ready")
    assert (status, body.get("failed")) == (200, []), body


def test_gateway_command_matches_its_procfile() -> None:
    procfile = service_dir(GATEWAY) / "Procfile"
    assert procfile.exists(), "api_gateway has no Procfile"
    web = next(line for line in procfile.read_text().splitlines() if line.startswith("web:"))
    command = json.loads(Dockerfile.read(service_dir(GATEWAY) / "Dockerfile").final("CMD"))
    assert web.split(":", 1)[1].split()[:3] == command


# ---- the other processes' commands ------------------------------------------------------


def commands_of(service: str) -> set[tuple[str, ...]]:
    """Every command the compose file and the chart run from this service's image."""
    found: set[tuple[str, ...]] = set()
    for container in load_model(".env.example", "ha.env")["services"].values():
        if container.get("labels", {}).get("com.comptoir.service") == service and "command" in container:
            found.add(tuple(container["command"]))
    helm = ROOT / ".devstack" / "tools" / "bin" / "helm"
    rendered = run(
        [str(helm), "template", "c", str(ROOT / "deploy/helm/comptoir"), "--kube-version", "1.33.0"]
    )
    assert rendered.returncode == 0, rendered.stderr
    prefix = service.replace("_", "-")
    for doc in yaml.safe_load_all(rendered.stdout):
        if doc["kind"] in {"Deployment", "Job"} and doc["metadata"]["name"].startswith(prefix):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if "command" in container:
                    found.add(tuple(container["command"]))
    return found


def management_commands(service: str) -> set[str]:
    result = run([str(VENV_BIN / "python"), "manage.py", "help", "--commands"], cwd=service_dir(service))
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize("service", DJANGO_SERVICES)
def test_celery_app_of_the_worker_and_beat_commands_loads(service: str) -> None:
    require_service(service)
    apps = {c[c.index("-A") + 1] for c in commands_of(service) if c[0] == "celery"}
    assert apps == {"config"}
    loaded = run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "import django; django.setup(); from config.celery import app; print(app.main)",
        ],
        cwd=service_dir(service),
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == service


@pytest.mark.parametrize("service", DJANGO_SERVICES)
def test_management_commands_of_the_processes_exist(service: str) -> None:
    require_service(service)
    wanted: set[str] = set()
    for command in commands_of(service):
        text = " ".join(command)
        wanted |= set(re.findall(r"manage\.py (\w+)", text))
    available = management_commands(service)
    missing = sorted(wanted - available)
    assert missing == [], f"{service}: compose/helm run manage.py {missing}, which it lacks"
