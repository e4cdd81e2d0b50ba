"""One broker of the 3-broker KRaft cluster SIGKILLed under load, then started again
(the deployment's HA profile: replication factor 3, `min.insync.replicas` 2).

Runs only on the devstack's cluster (`COMPTOIR_KAFKA_BROKERS=3`; `make chaos` runs it
in a second pass on it): the two brokers left keep the controller quorum (two votes of
three) and every partition's in-sync majority, so the platform must not even notice
beyond a leader election: no publish refused (no relay failure counted, no outbox row
with a refused attempt), nothing lost, every order settled, the auditor clean, the
restarted broker back in every partition's ISR.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from harness import (
    Devstack,
    Result,
    Supervisor,
    _kafka_config,
    django_json,
    log,
    platform_services,
    procfile_processes,
)
from platform_client import REPO_ROOT, Platform
from test_faults import assert_recovered, drive, new_chaos, orders

BROKER_DOWN_S = float(os.environ.get("CHAOS_BROKER_DOWN_S", "30"))
BROKERS = (1, 2, 3)
FAILURES_LINE = r"^comptoir_outbox_relay_failures_total\{[^}]*\} (\S+)$"

pytestmark = pytest.mark.kafka_cluster


def broker_name(node_id: int) -> str:
    return f"kafka-{node_id}"


def partition_leaders() -> tuple[Counter[int], int]:
    """How many partitions of the platform's topics each broker leads; the active controller."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_kafka_config())
    metadata = admin.list_topics(timeout=15)
    leaders: Counter[int] = Counter()
    for name, topic in metadata.topics.items():
        if name.startswith("__"):
            continue
        for partition in topic.partitions.values():
            leaders[partition.leader] += 1
    controller = admin.describe_cluster(request_timeout=10).result(timeout=15).controller
    return leaders, int(controller.id) if controller is not None else -1


def under_replicated() -> list[str]:
    """Partitions (internal topics included) whose in-sync replicas are not all three brokers."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(_kafka_config()).list_topics(timeout=15)
    return [
        f"{name}/{pid}"
        for name, topic in metadata.topics.items()
        for pid, partition in topic.partitions.items()
        if len(partition.isrs) < len(BROKERS)
    ]


def relay_metrics_ports() -> dict[str, int]:
    """Each relay's /metrics port, as `python -m devstack status` lists it."""
    status = subprocess.run(
        [sys.executable, "-m", "devstack", "status"],
        cwd=REPO_ROOT,
        check=False,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    relays = {f"{s}.relay" for s in platform_services() if f"{s}.relay" in procfile_processes(s)}
    ports = {}
    for line in status.splitlines():
        match = re.match(r"^(\S+\.relay)\s.*127\.0\.0\.1:(\d+)\s*$", line)
        if match and match.group(1) in relays:
            ports[match.group(1)] = int(match.group(2))
    assert set(ports) == relays, f"relay metrics ports not found in `devstack status`:\n{status}"
    return ports


def relay_failures(ports: dict[str, int], devstack: Devstack) -> dict[str, tuple[int | None, float]]:
    """relay -> (its pid, comptoir_outbox_relay_failures_total): rows the broker did not acknowledge."""
    found: dict[str, tuple[int | None, float]] = {}
    for name, port in ports.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        total = sum(float(value) for value in re.findall(FAILURES_LINE, text, re.MULTILINE))
        found[name] = (devstack.pid(name), total)
    return found


def refused_outbox_rows(since: datetime) -> dict[str, int]:
    """Outbox rows written since `since` that the broker refused at least once (or quarantined)."""
    code = (
        "import json; from django.db.models import Q; from django.utils.dateparse import parse_datetime; "
        "from comptoir.events.models import OutboxMessage; "
        f"since = parse_datetime({since.isoformat()!r}); "
        "print(json.dumps(OutboxMessage.objects.filter(created_at__gte=since)"
        ".filter(Q(attempts__gt=0) | Q(quarantined_at__isnull=False)).count()))"
    )
    services = [s for s in platform_services() if f"{s}.relay" in procfile_processes(s)]
    return {service: int(django_json(service, code)) for service in services}


def cluster_checks(
    devstack: Devstack, ports: dict[str, int], before: dict[str, tuple[int | None, float]], since: datetime
) -> Any:
    """The scenario's own recovery check: the relays counted no failure, no outbox row was
    refused, every broker runs and is back in every partition's ISR."""

    def check(result: Result) -> None:
        after = relay_failures(ports, devstack)
        failed = {}
        for name, (pid, total) in after.items():
            old_pid, old_total = before[name]
            if pid != old_pid:
                result.notes.append(f"{name} restarted during the scenario (its failure counter too)")
                failed[name] = total
            elif total > old_total:
                failed[name] = total - old_total
        if failed:
            result.notes.append(
                f"publishes not acknowledged (comptoir_outbox_relay_failures_total): {failed}"
            )
        refused = {s: n for s, n in refused_outbox_rows(since).items() if n}
        if refused:
            result.notes.append(f"outbox rows refused by the broker: {refused}")
        down = [broker_name(n) for n in BROKERS if not devstack.running(broker_name(n))]
        if down:
            result.notes.append(f"brokers not running: {down}")
        lagging: list[str] = []
        end = time.monotonic() + 120
        while time.monotonic() < end:
            lagging = under_replicated()
            if not lagging:
                break
            time.sleep(2)
        if lagging:
            result.notes.append(f"{len(lagging)} partition(s) still under-replicated, e.g. {lagging[:5]}")

    return check


def test_one_broker_killed_under_load(platform: Platform, devstack: Devstack, supervisor: Supervisor) -> None:
    """SIGKILL the broker leading the most partitions; the load goes on; start it again."""
    # conftest selects this scenario only on the cluster; reaching it elsewhere is a wrong setup.
    assert os.environ.get("COMPTOIR_KAFKA_BROKERS") == "3", "needs COMPTOIR_KAFKA_BROKERS=3 (make chaos)"
    assert all(devstack.running(broker_name(n)) for n in BROKERS), "the three brokers must run"
    name = f"kafka broker SIGKILLed {BROKER_DOWN_S:.0f} s (3 brokers)"
    chaos = new_chaos(name, platform, devstack, supervisor)
    ports = relay_metrics_ports()
    before = relay_failures(ports, devstack)
    load = chaos.load(count=orders(60), duration_s=BROKER_DOWN_S + 40)

    def fault() -> None:
        leaders, controller = partition_leaders()
        victim = max(BROKERS, key=lambda n: leaders.get(n, 0))
        name = broker_name(victim)
        role = " (the active controller)" if victim == controller else ""
        pid = devstack.kill(name)
        log(
            f"{chaos.name}: SIGKILL {name}{role} (pid {pid}), leader of {leaders.get(victim, 0)} "
            f"partitions; leaders before: {dict(leaders)}"
        )
        assert pid is not None, f"{name} was not running"
        time.sleep(BROKER_DOWN_S)
        log(f"{chaos.name}: starting {name} again")
        assert devstack.start(name), f"{name} did not start again"

    healed_at = drive(chaos, load, fault)
    extra = cluster_checks(devstack, ports, before, chaos.started)
    assert_recovered(chaos.recover(load, healed_at=healed_at, extra=extra))
