"""GitHub Actions: one pipeline per service with path filters, tags publish and deploy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from _repo import ALL_SERVICES, DJANGO_SERVICES, WORKFLOWS, run, tool


def load(name: str) -> dict[str, Any]:
    # YAML 1.1 reads the `on:` key as True.
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return {str(key): value for key, value in data.items()}


def test_actionlint_passes_with_shellcheck() -> None:
    actionlint, shellcheck = tool("actionlint"), tool("shellcheck")
    assert actionlint, "actionlint is not installed: run `bash devstack/tools.sh`"
    assert shellcheck, "shellcheck is not installed: run `bash devstack/tools.sh`"
    result = run([str(actionlint), "-color=false", "-shellcheck", str(shellcheck)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    result = run([str(tool("actionlint")), "-color=false", str(broken)])
    assert result.returncode == 1
    assert "nope" in result.stdout


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_each_service_has_its_own_filtered_pipeline(service: str) -> None:
    workflow = load(f"{service}.yml")
    push, pull_request = workflow["on"]["push"], workflow["on"]["pull_request"]
    assert push["paths"] == pull_request["paths"]
    paths = set(push["paths"])
    assert f"services/{service}/**" in paths
    assert ("libs/comptoir/**" in paths) == (service in DJANGO_SERVICES)
    others = {f"services/{other}/**" for other in ALL_SERVICES if other != service}
    assert paths & others == set(), "another service's change must not run this pipeline"
    assert push["tags"] == [f"{service}-v*"]
    job = workflow["jobs"]["pipeline"]
    assert job["uses"] == "./.github/workflows/_service.yml"
    assert job["with"] == {"service": service, "django": service in DJANGO_SERVICES}


def test_the_shared_pipeline_checks_builds_then_publishes_and_deploys_on_tags() -> None:
    jobs = load("_service.yml")["jobs"]
    steps = " ".join(str(step.get("run", "")) for step in jobs["check"]["steps"])
    for needle in ("ruff check", "ruff format --check", "mypy", "run_suites.py"):
        assert needle in steps, needle
    assert jobs["image"]["needs"] == "check"
    build = next(s for s in jobs["image"]["steps"] if str(s.get("uses", "")).startswith("docker/build-push"))
    assert build["with"]["context"] == "."
    assert build["with"]["push"] is False
    assert jobs["publish"]["needs"] == "image"
    assert jobs["publish"]["if"] == "startsWith(github.ref, format('refs/tags/{0}-v', inputs.service))"
    assert jobs["deploy"]["needs"] == "publish"
    assert jobs["deploy"]["environment"] == "production"
    deploy = " ".join(str(step.get("run", "")) for step in jobs["deploy"]["steps"])
    assert "image.tags.$SERVICE=$VERSION" in deploy
    assert "--reuse-values" in deploy


def test_platform_pipeline_covers_contracts_delivery_compose_and_e2e() -> None:
    jobs = load("platform.yml")["jobs"]
    assert set(jobs) == {"contracts", "delivery", "compose", "e2e"}
    text = (WORKFLOWS / "platform.yml").read_text()
    for needle in ("make contracts-check", "make delivery-check", "docker compose", "tests/e2e"):
        assert needle in text


def test_every_action_is_pinned_to_a_version() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" in line and "./.github" not in line:
                reference = line.split("uses:", 1)[1].strip()
                assert re.search(r"@v\d+(\.\d+)*$", reference), (path.name, line)
