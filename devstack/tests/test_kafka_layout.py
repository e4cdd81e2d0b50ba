"""COMPTOIR_KAFKA_BROKERS picks the Kafka layout: the single broker (the default) or a
3-node KRaft cluster. Checked in fresh processes (the layout is read once, at import),
each with a state folder of its own: what every platform process and test run is told,
and each node's broker configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

NODE_CONFIGS = """
import json
from devstack import _infra
from devstack._config import kafka_nodes
out = {}
for node in kafka_nodes():
    path = _infra._kafka_config(node)
    props = dict(line.split("=", 1) for line in path.read_text().splitlines() if line)
    out[str(node.node_id)] = {"path": str(path), "props": props,
                              "name": _infra.kafka_process_name(node)}
out["processes"] = [p.name for p in _infra.kafka_processes()]
out["heap"] = [a for p in _infra.kafka_processes() for a in p.argv if a.startswith("-Xmx")]
print(json.dumps(out))
"""


def devstack_python(code: str, tmp_path: Path, brokers: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_KAFKA")}
    env.update(
        {
            "COMPTOIR_DEVSTACK_DIR": str(tmp_path / "state"),
            "COMPTOIR_KAFKA_PORT": "29092",
            "COMPTOIR_KAFKA_CONTROLLER_PORT": "29093",
            "COMPTOIR_KAFKA_PORT_2": "29094",
            "COMPTOIR_KAFKA_CONTROLLER_PORT_2": "29095",
            "COMPTOIR_KAFKA_PORT_3": "29096",
            "COMPTOIR_KAFKA_CONTROLLER_PORT_3": "29097",
        }
    )
    if brokers is not None:
        env["COMPTOIR_KAFKA_BROKERS"] = brokers
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def layout(tmp_path: Path, brokers: str | None) -> dict[str, object]:
    result = devstack_python(NODE_CONFIGS, tmp_path, brokers)
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def run_env(tmp_path: Path, brokers: str | None) -> dict[str, str]:
    code = "import json; from devstack._config import service_env; print(json.dumps(service_env()))"
    result = devstack_python(code, tmp_path, brokers)
    assert result.returncode == 0, result.stderr
    env: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return env


def test_the_single_broker_is_the_default(tmp_path: Path) -> None:
    found = layout(tmp_path, None)
    assert found["processes"] == ["kafka"]
    assert found["heap"] == ["-Xmx320m"]
    props = found["1"]["props"]  # type: ignore[index]
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert "min.insync.replicas" not in props
    env = run_env(tmp_path, None)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:29092"
    assert "COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR" not in env


def test_three_brokers_replicate_everything_three_times(tmp_path: Path) -> None:
    found = layout(tmp_path, "3")
    assert found["processes"] == ["kafka-1", "kafka-2", "kafka-3"]
    assert found["heap"] == ["-Xmx256m"] * 3
    for node_id, port, controller in (("1", 29092, 29093), ("2", 29094, 29095), ("3", 29096, 29097)):
        node = found[node_id]
        props = node["props"]  # type: ignore[index]
        assert Path(node["path"]).parent.name == f"node-{node_id}"  # type: ignore[index]
        assert props["node.id"] == node_id
        assert props["process.roles"] == "broker,controller"
        assert props["controller.quorum.voters"] == ("1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097")
        assert props["listeners"] == (
            f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
        )
        assert props["advertised.listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{port}"
        # The same security as the single broker: SCRAM, PLAIN to the controllers, no ACL no access.
        assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
        assert props["allow.everyone.if.no.acl.found"] == "false"
        assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert {
            key: props[key]
            for key in (
                "default.replication.factor",
                "min.insync.replicas",
                "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr",
                "unclean.leader.election.enable",
            )
        } == {
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3",
            "transaction.state.log.min.isr": "2",
            "unclean.leader.election.enable": "false",
        }
    env = run_env(tmp_path, "3")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert env["COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR"] == "3"


@pytest.mark.parametrize("value", ["2", "0", "three"])
def test_other_broker_counts_are_refused(tmp_path: Path, value: str) -> None:
    result = devstack_python("import devstack._config", tmp_path, value)
    assert result.returncode != 0
    assert "COMPTOIR_KAFKA_BROKERS" in result.stderr


def test_help_documents_the_switch() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "COMPTOIR_KAFKA_BROKERS=3" in result.stdout
