"""The README's first-steps commands, run as written (curl through the gateway)
against the running platform: each prints what the README says it does."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any
from urllib.parse import urlsplit

from platform_client import GATEWAY_URL, REPO_ROOT, Platform

SEPARATOR = "\x1e"
ASSIGNMENT = re.compile(r"^([A-Z_]+)=\$\(")


def readme_commands() -> list[str]:
    """The logical lines of the README's bash block that logs in as alice."""
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if "api/users/auth/login/" in b]
    commands, current = [], ""
    for line in block.splitlines():
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current)
            current = ""
    return [c for c in commands if c.strip()]


def run_readme_commands() -> list[tuple[str, str]]:
    """Each command with what it printed (an assignment: the value it assigned)."""
    gateway = urlsplit(GATEWAY_URL).netloc
    commands = [command.replace("127.0.0.1:8000", gateway) for command in readme_commands()]
    script = ["set -euo pipefail"]
    for command in commands:
        script.append(command)
        assigned = ASSIGNMENT.match(command)
        if assigned:
            script.append(f'printf "%s" "${assigned[1]}"')
        script.append(f"printf '{SEPARATOR}'")
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    outputs = result.stdout.split(SEPARATOR)[:-1]
    assert len(outputs) == len(commands), result.stdout
    return list(zip(commands, outputs, strict=True))


def output_of(ran: list[tuple[str, str]], fragment: str) -> str:
    (output,) = [out for command, out in ran if fragment in command]
    return output


def test_the_readme_examples_work_as_written(platform: Platform) -> None:
    ran = run_readme_commands()

    assert output_of(ran, "TOKEN=").count(".") == 2  # a JWT
    coffee: dict[str, Any] = json.loads(output_of(ran, "?category=coffee"))
    assert coffee["count"] >= 4
    assert {product["category"] for product in coffee["results"]} == {"coffee"}
    espresso: dict[str, Any] = json.loads(output_of(ran, "?search=espresso"))
    assert espresso["count"] >= 1
    for product in espresso["results"]:
        text = " ".join([product["name"], product["description"], product["sku"]]).lower()
        assert "espresso" in text
    product_id = int(output_of(ran, "PRODUCT="))
    order_id = int(output_of(ran, "ORDER="))
    order: dict[str, Any] = json.loads(output_of(ran, "/api/orders/$ORDER/"))
    assert order["id"] == order_id
    assert [line["product_id"] for line in order["lines"]] == [product_id]
    assert order["status"] in {"PENDING", "CONFIRMED", "CANCELLED"}
    assert isinstance(order["timeline"], list)
