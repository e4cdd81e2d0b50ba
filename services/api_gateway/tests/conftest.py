"""Real processes: three stub upstreams and the gateway itself, on free loopback
ports, the gateway pointed at the stubs and at the real Redis (its own db and a
key prefix unique to the run)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.tokens import TokenFactory

SERVICE_DIR = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get(
    "GATEWAY_TEST_REDIS_URL", f"redis://127.0.0.1:{os.environ.get('COMPTOIR_REDIS_PORT', '6380')}/13"
)
UPSTREAM_TIMEOUT_S = 1.0
BREAKER_RESET_S = 1.0
MAX_BODY = 100_000
USER_LIMIT = 15
LOGIN_LIMIT = 3
JWKS_COOLDOWN_S = 0.5
BODY_TIMEOUT_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_live(url: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not live within {deadline_s} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class Stub:
    """An upstream process that a test may kill and start again on the same port."""

    name: str
    areas: str
    jwks_file: Path
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_dir / f"stub-{self.name}.log"
        env = {
            **os.environ,
            "STUB_NAME": self.name,
            "STUB_AREAS": self.areas,
            "STUB_JWKS_FILE": str(self.jwks_file),
        }
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "tests.stub:app",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                cwd=SERVICE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until_live(self.url, self.process, log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def requests(self) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = httpx.get(self.url + "/_stub/requests", timeout=5).json()
        return seen

    def seen(self, request_id: str) -> list[dict[str, Any]]:
        """The requests this stub received carrying `request_id`."""
        return [r for r in self.requests() if r["headers"].get("x-request-id") == request_id]


@dataclass
class Platform:
    gateway_url: str
    accounts: Stub  # users, orders, emails (and the JWKS)
    catalog: Stub  # products
    payments: Stub  # payments: the one the breaker test kills
    redis_prefix: str
    log: Path
    jwks_file: Path


# The metrics address of each gateway started here, by its public address.
METRICS_URLS: dict[str, str] = {}


def metrics_of(gateway_url: str) -> str:
    """What the gateway's metrics port serves (its public port does not)."""
    return httpx.get(METRICS_URLS[gateway_url] + "/metrics", timeout=5).text


def start_gateway(overrides: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The gateway as a real uvicorn process (one worker) on a free port, configured by env,
    its metrics on another free port."""
    port = free_port()
    metrics_port = free_port()
    env = {
        **os.environ,
        "GATEWAY_TIMEOUT_S": str(UPSTREAM_TIMEOUT_S),
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_RATE_LIMIT_AUTHENTICATED": f"{USER_LIMIT}/minute",
        "GATEWAY_RATE_LIMIT_ANONYMOUS": "1000/minute",
        "GATEWAY_RATE_LIMIT_LOGIN": f"{LOGIN_LIMIT}/minute",
        "GATEWAY_BREAKER_FAILURE_THRESHOLD": "3",
        "GATEWAY_BREAKER_RESET_TIMEOUT_S": str(BREAKER_RESET_S),
        "GATEWAY_RETRIES": "1",
        "GATEWAY_RETRY_BACKOFF_S": "0.02",
        "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
        "GATEWAY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "GATEWAY_CORS_ORIGINS": "https://shop.example",
        "GATEWAY_JWKS_REFETCH_COOLDOWN_S": str(JWKS_COOLDOWN_S),
        **overrides,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.serve",
                "--port",
                str(port),
                "--workers",
                "1",
                "--metrics-port",
                str(metrics_port),
            ],
            cwd=SERVICE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    METRICS_URLS[url] = f"http://127.0.0.1:{metrics_port}"
    try:
        wait_until_live(url, process, log)
    except RuntimeError:
        stop(process)
        raise
    return process, url


@pytest.fixture(scope="session")
def token_factory() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, token_factory: TokenFactory) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("platform")
    jwks_file = folder / "jwks.json"
    jwks_file.write_text(json.dumps(token_factory.jwks))
    stubs = [
        Stub("accounts", "users,orders,emails", jwks_file, folder),
        Stub("catalog", "products", jwks_file, folder),
        Stub("payments", "payments", jwks_file, folder),
    ]
    accounts, catalog, payments = stubs
    prefix = f"gateway-test-{uuid.uuid4().hex[:8]}"
    log = folder / "gateway.log"
    env = {
        "USER_SERVICE_URL": accounts.url,
        "ORDER_SERVICE_URL": accounts.url,
        "EMAIL_SERVICE_URL": accounts.url,
        "PRODUCT_SERVICE_URL": catalog.url,
        "PAYMENT_SERVICE_URL": payments.url,
        "GATEWAY_RATE_LIMIT_PREFIX": prefix,
    }
    gateway: subprocess.Popen[bytes] | None = None
    try:
        for stub in stubs:
            stub.start()
        gateway, url = start_gateway(env, log)
        yield Platform(url, accounts, catalog, payments, prefix, log, jwks_file)
    finally:
        if gateway is not None:
            stop(gateway)
        for stub in stubs:
            stub.stop()
        forget_rate_limits(prefix)


def forget_rate_limits(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def gateway(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway_url, timeout=10) as client:
        yield client


_user_ids = itertools.count(100)


@pytest.fixture
def user_id() -> int:
    """A user id no other test uses, so per-user rate limits never interfere."""
    return next(_user_ids)


@pytest.fixture
def request_id() -> str:
    return f"test-{uuid.uuid4().hex}"
