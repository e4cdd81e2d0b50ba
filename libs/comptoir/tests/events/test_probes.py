"""Liveness is "my loop turns", readiness is "my dependencies answer": with Kafka
stopped, a web process stays ready (its writes go to the outbox), a running relay
and consumer stay alive (their loops go on, heartbeat fresh) and their readiness
names Kafka."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import devstack
from django.conf import settings
from django.test import Client
from eventsapp.models import HandledNote

from comptoir._health import heartbeat_file
from comptoir.events.testing import wait_for

from .support import Spawner, publish_notes

SERVICE = "comptoir_chassis"


def probe(spawner: Spawner, heartbeats: Path, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "comptoir.probe", *args, "--service", SERVICE],
        env=spawner.env(COMPTOIR_HEARTBEAT_DIR=str(heartbeats)),
        cwd=spawner.tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout.strip() + result.stderr.strip()


def beats_after(path: Path, moment: float) -> Callable[[], bool]:
    """A check: the heartbeat file was touched after `moment` (a time.time())."""
    return lambda: path.exists() and path.stat().st_mtime > moment


def test_a_broker_outage_keeps_web_ready_and_loops_alive_and_relay_consumer_unready(
    client: Client, spawner: Spawner, group_id: str, tmp_path: Path
) -> None:
    heartbeats = tmp_path / "heartbeats"
    env = {"COMPTOIR_HEARTBEAT_DIR": str(heartbeats)}
    relay = spawner.start("outbox_relay", **env)
    consumer = spawner.start("consume_events", "--group-id", group_id, **env)
    relay_beat = heartbeat_file(SERVICE, "relay").name
    consumer_beat = heartbeat_file(SERVICE, "consumer").name
    started = time.time()
    for name in (relay_beat, consumer_beat):
        wait_for(beats_after(heartbeats / name, started - 1), timeout_s=60, what=name)

    response = client.get("/health/ready")
    assert (response.status_code, response.json()["checks"]) == (200, {"database": "ok", "redis": "ok"})
    for kind in ("relay", "consumer"):
        assert probe(spawner, heartbeats, "live", kind)[0] == 0
        code, report = probe(spawner, heartbeats, "ready", kind)
        assert (code, json.loads(report)) == (0, {"checks": {"database": "ok", "kafka": "ok"}, "failed": []})

    devstack("stop", "kafka")
    try:
        stopped = time.time()
        response = client.get("/health/ready")
        assert response.status_code == 200, response.json()
        assert response.json()["failed"] == []
        for kind in ("relay", "consumer"):
            code, report = probe(spawner, heartbeats, "ready", kind)
            body = json.loads(report)
            assert code == 1
            assert body["failed"] == ["kafka"]
            assert body["checks"]["database"] == "ok"
            assert body["checks"]["kafka"].startswith("failed:")
        # Both loops go on without the broker: fresh heartbeats, live, not restarted.
        for name in (relay_beat, consumer_beat):
            wait_for(beats_after(heartbeats / name, stopped), timeout_s=60, what=f"{name} to beat")
        for kind in ("relay", "consumer"):
            assert probe(spawner, heartbeats, "live", kind)[0] == 0
        assert (relay.poll(), consumer.poll()) == (None, None)
    finally:
        devstack("start", "kafka")


class Forwarder:
    """A TCP port that forwards to the real broker once opened: the broker "comes back"."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        self.connections: list[socket.socket] = []

    def open(self) -> None:
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by close()
            upstream = socket.create_connection(self.target)
            self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_relay_and_a_consumer_started_without_the_broker_wait_for_it(
    spawner: Spawner, group_id: str, tmp_path: Path
) -> None:
    host, _, port = settings.KAFKA_BOOTSTRAP_SERVERS.split(",")[0].rpartition(":")
    broker = Forwarder((host, int(port)))  # bound, not listening yet: nothing answers there
    heartbeats = tmp_path / "heartbeats"
    env = {"COMPTOIR_HEARTBEAT_DIR": str(heartbeats), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker.port}"}
    try:
        relay = spawner.start("outbox_relay", LOG_LEVEL="INFO", **env)
        consumer = spawner.start("consume_events", "--group-id", group_id, LOG_LEVEL="INFO", **env)
        started = time.time()
        for kind in ("relay", "consumer"):
            wait_for(
                beats_after(heartbeats / heartbeat_file(SERVICE, kind).name, started - 1),
                timeout_s=60,
                what=f"the {kind} to beat while it waits",
            )
        wait_for(
            lambda: all("waiting for Kafka" in spawner.output(p) for p in (relay, consumer)),
            timeout_s=60,
            what="both to say they wait for Kafka",
        )
        assert (relay.poll(), consumer.poll()) == (None, None), "a process exited without its broker"
        for kind in ("relay", "consumer"):
            assert probe(spawner, heartbeats, "live", kind)[0] == 0

        broker.open()
        (envelope,) = publish_notes(1, keys=["back"])
        wait_for(
            lambda: HandledNote.objects.filter(event_id=envelope.event_id).exists(),
            timeout_s=90,
            what="the event relayed and handled once the broker answers",
        )
    except BaseException:
        for process in (relay, consumer):
            print(spawner.output(process)[-3000:])
        raise
    finally:
        broker.close()


def test_liveness_fails_without_a_heartbeat_or_with_a_stale_one(spawner: Spawner, tmp_path: Path) -> None:
    heartbeats = tmp_path / "heartbeats"
    code, report = probe(spawner, heartbeats, "live", "relay")
    assert (code, report) == (1, f"{SERVICE} relay: no heartbeat yet")
    path = heartbeats / heartbeat_file(SERVICE, "relay").name
    path.parent.mkdir()
    path.touch()
    old = time.time() - 300
    os.utime(path, (old, old))
    code, report = probe(spawner, heartbeats, "live", "relay", "--max-age-s", "120")
    assert code == 1
    assert report.startswith(f"{SERVICE} relay: last heartbeat 30")
    assert report.endswith("s ago (over 120 s)")


def test_liveness_of_a_consumer_running_its_relay_needs_both_heartbeats(
    spawner: Spawner, tmp_path: Path
) -> None:
    heartbeats = tmp_path / "heartbeats"
    heartbeats.mkdir()
    (heartbeats / heartbeat_file(SERVICE, "consumer").name).touch()
    code, report = probe(spawner, heartbeats, "live", "consumer", "relay")
    assert code == 1
    assert report.splitlines()[1] == f"{SERVICE} relay: no heartbeat yet"
    (heartbeats / heartbeat_file(SERVICE, "relay").name).touch()
    code, report = probe(spawner, heartbeats, "live", "consumer", "relay")
    assert code == 0, report


@pytest.mark.parametrize("kind", ["relay", "consumer"])
def test_an_unknown_service_is_refused_clearly(kind: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "comptoir.probe", "live", kind],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "name the service: --service, or set COMPTOIR_SERVICE" in result.stderr
