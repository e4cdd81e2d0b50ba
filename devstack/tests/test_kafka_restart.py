"""A broker restarted on its old data lets everyone in at once, after SCRAM users were
created and deleted (as the test suites do with principals of their own).

Kafka 4.1's ScramDelta.apply() drops every user of a mechanism when a
delta that starts with none of them removes one before adding the others: replayed
from the start of a metadata log in which users were deleted, the restarted broker
lost the admin and refused every SCRAM login. The devstack has the broker write a
metadata snapshot within seconds (and `up` waits for the first one), so a restart
replays from a snapshot that holds the admin. A real broker, in a state folder and on
ports of its own, run through the devstack's own start-up, with deleted users the
broker meets before the kept ones (the loss depends on that order).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """
import dataclasses, sys
from confluent_kafka.admin import AdminClient, NewTopic, ScramMechanism, UserScramCredentialDeletion
from comptoir._kafka_acls import catalog_services, load_catalog, upsert_scram_users
from devstack import _infra
from devstack import __main__ as devstack
from devstack._config import kafka_bootstrap
from devstack._credentials import kafka_admin_config

# Not the minutes a broker gets to start: a broker that lost the admin never lets it in.
processes = _infra.kafka_processes
_infra.kafka_processes = lambda *a: [dataclasses.replace(p, ready_deadline_s=45) for p in processes(*a)]

def java_bucket(name, slots=64):
    # The slot of `name` in a java.util.HashMap of `slots` slots (iteration follows slots).
    h = 0
    for char in name:
        h = (31 * h + ord(char)) & 0xFFFFFFFF
    return (h ^ (h >> 16)) & (slots - 1)

# Deleted users the broker's HashMap of changes iterates before every kept one (the
# admin, the services, "keeper"; 30 of them make it a 64-slot map): a replay from the
# log's start then meets a removal first, which is what loses the users.
kept = ["comptoir_admin", "keeper", *catalog_services(load_catalog(_infra.KAFKA_CATALOG))]
first = min(java_bucket(name) for name in kept)
CHURNED = [name for name in (f"churn-{i}" for i in range(5000)) if java_bucket(name) < first][:30]
assert len(CHURNED) == 30

def client(**login):
    config = {"bootstrap.servers": kafka_bootstrap(), "log_level": 0, "socket.timeout.ms": 5000}
    return AdminClient({**config, **(login or kafka_admin_config())})

try:
    devstack._start_kafka()
    print("secured:", _infra.kafka_secure(), flush=True)
    _infra.kafka_wait_for_snapshot()
    admin = client()
    for future in admin.create_topics([NewTopic("kept", 1, 1)]).values():
        future.result(timeout=30)
    churned = {name: f"password-{name}-0123456789" for name in CHURNED}
    upsert_scram_users(admin, {**churned, "keeper": "keeper-password-0123456789"})
    deletions = [UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512) for name in churned]
    for future in admin.alter_user_scram_credentials(deletions).values():
        future.result(timeout=30)
    for proc in _infra.kafka_processes():
        proc.stop()
    print("restarting", flush=True)
    devstack._start_kafka()
    topics = client().list_topics(timeout=15).topics
    print("kept topic:", "kept" in topics, flush=True)
    keeper = client(**{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "keeper", "sasl.password": "keeper-password-0123456789",
    })
    print("keeper brokers:", len(keeper.list_topics(timeout=15).brokers), flush=True)
finally:
    for proc in _infra.kafka_processes():
        proc.stop()
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_a_restart_after_scram_users_were_deleted_lets_the_admin_in(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # The Kafka jars of the checkout (fetched once by Maven), not a second copy.
    shared_cache = Path(os.environ.get("COMPTOIR_DEVSTACK_DIR", REPO_ROOT / ".devstack")) / "cache"
    shared_cache.mkdir(parents=True, exist_ok=True)
    (state / "cache").symlink_to(shared_cache)
    port, controller = _free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_KAFKA")}
    env.update(
        {
            "COMPTOIR_DEVSTACK_DIR": str(state),
            "COMPTOIR_KAFKA_PORT": str(port),
            "COMPTOIR_KAFKA_CONTROLLER_PORT": str(controller),
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", SCENARIO],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = result.stdout + result.stderr
    log = state / "logs" / "kafka.log"
    assert result.returncode == 0, output[-3000:] + (log.read_text()[-2000:] if log.exists() else "")
    # Not formatted again: the topic made before the restart is there.
    assert "kept topic: True" in result.stdout, output[-3000:]
    assert "keeper brokers: 1" in result.stdout, output[-3000:]
    assert "formatting" not in result.stdout, output[-3000:]
