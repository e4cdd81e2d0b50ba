"""The environment each process gets from the compose file and from the Helm chart
(`helm template` with the throwaway values, so the chart's Secrets are rendered too)."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import yaml
from _compose import load_model
from _repo import CHART_DIR, FRONTEND, GATEWAY, KUBERNETES_VERSION, ROOT, VENV_BIN, Dockerfile, run, tool
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ProcessEnvironment:
    source: str  # compose | helm
    container: str  # the compose service or the Deployment/Job
    service: str  # the service whose image runs it
    process: str  # web, worker, beat, relay, consumer, migrate, seed
    command: tuple[str, ...]  # empty: the image's CMD
    env: dict[str, str]

    @property
    def id(self) -> str:
        return f"{self.source}:{self.container}"


# Templates hold placeholders where a deployment's secret store puts real secrets
# (`.env.example`: "change-me-..."); the services refuse to start with them.
_PLACEHOLDER = "change-me"
_SECRET_NAME = re.compile(r"SECRET|PASSWORD")


@functools.cache
def _throwaway_signing_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def as_deployed(service: str, env: dict[str, str]) -> dict[str, str]:
    """`env` with what a secret store supplies: random secrets for placeholders, and
    user_service's signing key where the template leaves it to the store."""
    deployed = {
        name: token_urlsafe(32) if _SECRET_NAME.search(name) and _PLACEHOLDER in value else value
        for name, value in env.items()
    }
    if service == "user_service" and not {"JWT_SIGNING_KEY_PEM", "JWT_PRIVATE_KEYS_DIR"} & deployed.keys():
        deployed["JWT_SIGNING_KEY_PEM"] = _throwaway_signing_key()
    return deployed


def compose_environments() -> list[ProcessEnvironment]:
    found = []
    for name, container in load_model(".env.example")["services"].items():
        labels = container.get("labels", {})
        service = labels.get("com.comptoir.service")
        process = labels.get("com.comptoir.process")
        if service is None or process == "database":
            continue
        command = container.get("command", ())
        found.append(
            ProcessEnvironment(
                "compose",
                name,
                service,
                process,
                tuple(command),
                as_deployed(service, dict(container["environment"])),
            )
        )
    return found


def helm_documents() -> list[dict[str, Any]]:
    helm = tool("helm")
    assert helm is not None, "helm is not installed: run `bash devstack/tools.sh`"
    rendered = run(
        [
            str(helm),
            "template",
            "c",
            str(CHART_DIR),
            "-f",
            str(CHART_DIR / "ci" / "throwaway-values.yaml"),
            "--kube-version",
            KUBERNETES_VERSION,
        ]
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def helm_environments() -> list[ProcessEnvironment]:
    docs = helm_documents()
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in docs if d["kind"] == "Secret"}
    found = []
    for doc in docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        labels = doc["metadata"]["labels"]
        service = labels["app.kubernetes.io/name"].replace("-", "_")
        for container in doc["spec"]["template"]["spec"]["containers"]:
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(config_maps[source["configMapRef"]["name"]])
                if "secretRef" in source:
                    env.update(secrets.get(source["secretRef"]["name"], {}))
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = str(item["value"])
                else:  # valueFrom a Secret's key (e.g. the Kafka admin's, which no template renders)
                    ref = item["valueFrom"]["secretKeyRef"]
                    placeholder = f"unrendered-{ref['name']}-{ref['key']}-0123456789abcdef"
                    env[item["name"]] = str(secrets.get(ref["name"], {}).get(ref["key"], placeholder))
            found.append(
                ProcessEnvironment(
                    "helm",
                    doc["metadata"]["name"],
                    service,
                    labels["app.kubernetes.io/component"],
                    tuple(container.get("command", ())),
                    as_deployed(service, {key: str(value) for key, value in env.items()}),
                )
            )
    return found


def image_env(service: str) -> dict[str, str]:
    """The Dockerfile's ENV of the final stage (PATH left out)."""
    env = Dockerfile.read(ROOT / "services" / service / "Dockerfile").env()
    env.pop("PATH", None)
    return env


def variables_read(process: ProcessEnvironment, work: Path) -> set[str]:
    """The variables the process reads at start-up, given its rendered environment."""
    out = work / f"{process.source}-{process.container}.json"
    kind = {GATEWAY: "gateway", FRONTEND: "frontend"}.get(process.service, process.process)
    command = list(process.command)
    if not command:
        command = json.loads(Dockerfile.read(ROOT / "services" / process.service / "Dockerfile").final("CMD"))
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work),
        **image_env(process.service),
        **process.env,
    }
    result = subprocess.run(
        [sys.executable, str(HERE / "_record_env_reads.py"), str(out), kind, *command],
        cwd=ROOT / "services" / process.service,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{process.id}: {result.stderr[-3000:]}"
    return set(json.loads(out.read_text()))
