"""contracts/check_compatibility.py refuses breaking changes against git history."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[4] / "contracts" / "check_compatibility.py"
BASE: dict[str, Any] = {
    "type": "object",
    "required": ["order_id"],
    "properties": {"order_id": {"type": "string"}, "note": {"type": "string", "maxLength": 10}},
}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_compatibility", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def changed(**changes: Any) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        schema[key] = value
    return schema


@pytest.mark.parametrize(
    ("new", "problems"),
    [
        (changed(description="annotations are free"), []),
        (changed(properties={**BASE["properties"], "extra": {"type": "integer"}}), []),
        (
            changed(required=["order_id", "note"]),
            ["$: property 'note' became required"],
        ),
        (changed(required=[]), ["$: required property 'order_id' is no longer required"]),
        (
            changed(properties={**BASE["properties"], "note": {"type": "string", "maxLength": 5}}),
            ["$.note: maxLength changed from 10 to 5"],
        ),
        (
            changed(properties={**BASE["properties"], "order_id": {"type": "integer"}}),
            ["$.order_id: type changed from 'string' to 'integer'"],
        ),
        (changed(additionalProperties=False), ["$: constraint 'additionalProperties' was added"]),
    ],
)
def test_breaking_changes(new: dict[str, Any], problems: list[str]) -> None:
    assert load_script().breaking_changes(BASE, new) == problems


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=30)


def run_check(contracts: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--contracts", str(contracts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_script_compares_with_the_previous_committed_version(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    (contracts / "events" / "order.created").mkdir(parents=True)
    (contracts / "envelope.json").write_text(json.dumps({"type": "object"}))
    catalog = {"event_types": {"order.created": {"topic": "orders.order-created", "version": 1}}}
    (contracts / "events" / "catalog.json").write_text(json.dumps(catalog))
    schema = contracts / "events" / "order.created" / "1.json"
    schema.write_text(json.dumps(BASE))
    git(tmp_path, "init", "-q")
    git(
        tmp_path,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-qam",
        "v1",
        "--allow-empty",
    )
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "v1")
    assert run_check(contracts).returncode == 0

    schema.write_text(json.dumps(changed(required=["order_id", "note"])))
    refused = run_check(contracts)
    assert refused.returncode == 1
    assert (
        "breaking: contracts/events/order.created/1.json: $: property 'note' became required"
        in refused.stderr
    )

    # The same change as a new version is fine (once the catalogue moves to it).
    schema.write_text(json.dumps(BASE))
    (contracts / "events" / "order.created" / "2.json").write_text(json.dumps(changed(required=["note"])))
    catalog["event_types"]["order.created"]["version"] = 2
    (contracts / "events" / "catalog.json").write_text(json.dumps(catalog))
    assert run_check(contracts).returncode == 0

    schema.unlink()
    deleted = run_check(contracts)
    assert deleted.returncode == 1
    assert "contracts/events/order.created/1.json: a committed contract was deleted" in deleted.stderr
