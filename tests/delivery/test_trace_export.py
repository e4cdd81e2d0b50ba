"""Spans leave the processes the way compose and the chart configure them: each web
process (a Django service's gunicorn, the gateway) is started with its rendered
environment, its OTLP endpoint moved to a real receiver on 127.0.0.1 that speaks the
protocol the environment names, and one sampled request's spans must arrive there."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _environments import ProcessEnvironment, compose_environments, helm_environments, image_env
from _otlp import otlp_receiver
from _repo import FRONTEND, GATEWAY, ROOT, VENV_BIN, Dockerfile, free_port, port_open

START_TIMEOUT_S = 60.0
# OTLP's registered ports: a gRPC endpoint on the HTTP port (or the reverse) loses every span.
PROTOCOL_PORTS = {"grpc": 4317, "http/protobuf": 4318}
TRACED = ("order_service", GATEWAY)


def web_processes() -> list[ProcessEnvironment]:
    return [
        p for p in compose_environments() + helm_environments() if p.process == "web" and p.service in TRACED
    ]


def protocol_of(env: dict[str, str]) -> str:
    return (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )


# The storefront starts no trace of its own: it names each call's trace in the
# `traceparent` it sends, and the gateway's spans are the first of that trace.
TRACING_PROCESSES = [p for p in compose_environments() + helm_environments() if p.service != FRONTEND]


@pytest.mark.parametrize("process", TRACING_PROCESSES, ids=lambda p: p.id)
def test_the_otlp_endpoint_port_is_the_one_of_its_protocol(process: ProcessEnvironment) -> None:
    endpoint = process.env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    # Every process of the platform exports its spans: one without an endpoint is a gap.
    assert endpoint is not None, f"{process.id}: no OTEL_EXPORTER_OTLP_ENDPOINT"
    assert urlsplit(endpoint).port == PROTOCOL_PORTS[protocol_of(process.env)], (
        f"{process.id}: {endpoint} with OTEL_EXPORTER_OTLP_PROTOCOL={protocol_of(process.env)}"
    )


def start(process: ProcessEnvironment, endpoint: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = json.loads(Dockerfile.read(ROOT / "services" / process.service / "Dockerfile").final("CMD"))
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin",
        "HOME": str(log.parent),
        "TMPDIR": str(log.parent),
        **image_env(process.service),
        **process.env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        # One worker on loopback, through the variables the image reads.
        "PORT": str(port),
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} --workers 1",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_WORKERS": "1",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT / "services" / process.service,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture
def stopping() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        os.killpg(child.pid, 15)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, 9)
            child.wait(timeout=5)


@pytest.mark.parametrize("process", web_processes(), ids=lambda p: p.id)
def test_a_sampled_request_s_spans_reach_the_collector(
    process: ProcessEnvironment, tmp_path: Path, stopping: list[subprocess.Popen[bytes]]
) -> None:
    protocol = protocol_of(process.env)
    rendered = urlsplit(process.env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    with otlp_receiver(protocol) as receiver:
        port = free_port()
        log = tmp_path / "process.log"
        child = start(process, f"{rendered.scheme}://127.0.0.1:{receiver.port}", port, log)
        stopping.append(child)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open(port):
            assert child.poll() is None, f"exited with {child.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not listening after {START_TIMEOUT_S} s:\n{log.read_text()}"
            time.sleep(0.2)
        trace_id = secrets.token_hex(16)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/health/live",
            # A host every rendered DJANGO_ALLOWED_HOSTS accepts: the service's own DNS name.
            headers={
                "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
                "Host": process.service.replace("_", "-"),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            assert response.status == 200
        spans = receiver.wait_for_trace(trace_id)
        assert spans, (
            f"no span of trace {trace_id} reached the {protocol} receiver:\n{log.read_text()[-3000:]}"
        )
        assert {span.service for span in spans} == {process.env["OTEL_SERVICE_NAME"]}
