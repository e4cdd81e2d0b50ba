"""The platform's own processes, read from each service's `Procfile`.

A service declares its processes in `services/<name>/Procfile`, one
`<kind>: <command>` line each (web, worker, beat, relay, consumer...). `$PORT`
is the service's port from the devstack's table. The devstack names each one
`<service>.<kind>`, so any of them can be stopped and restarted on its own.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ._config import (
    FRONTENDS,
    HOST,
    LOG_DIR,
    PORTS,
    ROOT,
    SERVICE_PORTS,
    STATE_DIR,
    metrics_port,
    service_env,
)
from ._credentials import KAFKA_ADMIN, django_secret_key, kafka_client_env, service_secrets_env
from ._process import ManagedProcess, log_tail

SERVICES_DIR = ROOT / "services"
METRICS_DIR = STATE_DIR / "metrics"
VENV_BIN = Path(sys.executable).parent


def services() -> list[str]:
    """The services that exist in this checkout, in start order."""
    return [name for name in SERVICE_PORTS if (SERVICES_DIR / name / "Procfile").exists()]


def _env(service: str) -> dict[str, str]:
    env = {
        **service_env(),
        "PORT": str(SERVICE_PORTS[service]),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    if is_django(service):
        # Its own secrets and Kafka principal, drawn for this checkout.
        env.update(service_secrets_env(service))
    elif service in FRONTENDS:
        # A frontend signs its session cookies; it holds no other secret.
        env["DJANGO_SECRET_KEY"] = django_secret_key(service)
    if service == "api_gateway":
        # What the staff-only /api/ops/traces/ and /api/ops/metrics/ routes read.
        env["GATEWAY_TRACES_URL"] = f"http://{HOST}:{PORTS.traces_ui}"
        env["GATEWAY_PROMETHEUS_URL"] = f"http://{HOST}:{PORTS.prometheus}"
    return env


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)

    return check


def processes(service: str) -> list[ManagedProcess]:
    folder = SERVICES_DIR / service
    env = _env(service)
    found = []
    for line in (folder / "Procfile").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, command = line.partition(":")
        kind = kind.strip()
        argv = [_expand(part, env) for part in shlex.split(command)]
        port = SERVICE_PORTS[service]
        ready = _http_ok(f"http://{HOST}:{port}/health/live") if kind == "web" else (lambda: True)
        process_env = dict(env)
        metrics_dir = METRICS_DIR / f"{service}.{kind}"
        # One Prometheus multiprocess folder per process group, emptied before it starts.
        process_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        own_port = metrics_port(service, kind)
        if own_port is not None:
            process_env["COMPTOIR_METRICS_PORT"] = str(own_port)
        found.append(
            ManagedProcess(
                name=f"{service}.{kind}",
                argv=argv,
                ready=ready,
                cwd=folder,
                env=process_env,
                ready_deadline_s=60,
                prepare=_fresh_folder(metrics_dir),
            )
        )
    return found


def _fresh_folder(folder: Path) -> Callable[[], None]:
    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)

    return prepare


def scrape_targets() -> list[tuple[str, str, str]]:
    """(service, process, host:port) of every process that serves /metrics."""
    targets = []
    for service in services():
        if service in FRONTENDS:
            continue  # no metrics of its own: what it calls is measured at the gateway
        for proc in processes(service):
            kind = proc.name.split(".", 1)[1]
            port = metrics_port(service, kind) or (SERVICE_PORTS[service] if kind == "web" else None)
            if port is not None:
                targets.append((service, proc.name, f"{HOST}:{port}"))
    return targets


def all_processes() -> list[ManagedProcess]:
    return [proc for service in services() for proc in processes(service)]


def _expand(word: str, env: dict[str, str]) -> str:
    for key, value in sorted(env.items(), key=lambda kv: -len(kv[0])):
        word = word.replace(f"${{{key}}}", value).replace(f"${key}", value)
    return word


def manage(service: str, *args: str, kafka_admin: bool = False, admin_password: str | None = None) -> None:
    """Runs `manage.py <args>` for a service, failing loudly with its output.

    `kafka_admin`: as the Kafka admin principal (creating topics), not the service's own.
    `admin_password`: given as DJANGO_ADMIN_PASSWORD (seed_admin), never on the command line.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **_env(service)}
    if kafka_admin:
        env.update(kafka_client_env(KAFKA_ADMIN))
    if admin_password is not None:
        env["DJANGO_ADMIN_PASSWORD"] = admin_password
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SERVICES_DIR / service,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    log = LOG_DIR / f"{service}.manage.log"
    with log.open("a") as handle:
        handle.write(f"--- manage.py {' '.join(args)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise SystemExit(f"devstack: {service}: manage.py {' '.join(args)} failed:\n{log_tail(log, 40)}")


def manage_passthrough(service: str, args: list[str]) -> int:
    """`manage.py <args>` for an operator: the service's own environment (its
    secrets and service-client credentials), output straight to the terminal."""
    if service not in SERVICE_PORTS or not is_django(service):
        raise SystemExit(f"devstack: {service!r} is not a Django service of this checkout")
    env = {**os.environ, **_env(service)}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=SERVICES_DIR / service, env=env
    ).returncode


def is_django(service: str) -> bool:
    """A Django service of the platform (database, topics, admin); frontends are not."""
    return service not in FRONTENDS and (SERVICES_DIR / service / "manage.py").exists()


def has_command(service: str, command: str) -> bool:
    folder = SERVICES_DIR / service
    return any(folder.glob(f"*/management/commands/{command}.py"))
