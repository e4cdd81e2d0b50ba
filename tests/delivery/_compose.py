"""The compose model two ways: `docker compose config` (when the plugin is built)
and a small loader of our own (YAML merge keys, `${VAR}` interpolation, profiles)
so the structural tests run even where the plugin is missing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from _repo import COMPOSE_DIR, compose_plugin, run

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


class InterpolationError(Exception):
    pass


def read_env_files(*names: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in names:
        for raw in (COMPOSE_DIR / name).read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expression = match.group("braced") or match.group("plain")
        for operator in (":?", "?", ":-", "-"):
            if operator in expression:
                name, _, argument = expression.partition(operator)
                current = env.get(name)
                unset = current is None or (operator.startswith(":") and current == "")
                if operator.endswith("?"):
                    if unset:
                        raise InterpolationError(f"required variable {name} is missing a value: {argument}")
                    return str(current)
                return argument if unset else str(current)
        return env.get(expression, "")

    return _VARIABLE.sub(replace, value)


def _walk(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def load_raw() -> dict[str, Any]:
    model: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return model


def load_model(*env_files: str) -> dict[str, Any]:
    """What `docker compose --env-file ... config` yields, in our own loader."""
    env = read_env_files(*env_files)
    model = _walk(load_raw(), env)
    profiles = {p for p in env.get("COMPOSE_PROFILES", "").split(",") if p}
    services = {}
    for name, service in model["services"].items():
        if service.get("profiles") and not profiles & set(service["profiles"]):
            continue
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        service["depends_on"] = {
            dep: {
                "condition": spec.get("condition", "service_started"),
                "required": spec.get("required", True),
            }
            for dep, spec in depends.items()
        }
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        service["environment"] = {key: str(value) for key, value in environment.items()}
        services[name] = service
    model["services"] = services
    return {key: value for key, value in model.items() if not key.startswith("x-")}


def docker_compose_config(*env_files: str, extra: tuple[str, ...] = ()) -> Any:
    """`docker compose config` itself; None when the plugin is not built here."""
    plugin = compose_plugin()
    if plugin is None:
        return None
    args = ["docker", "compose"]
    for name in env_files:
        args += ["--env-file", name]
    # Only what the client needs: variables of the caller's shell (the devstack
    # sets KAFKA_BOOTSTRAP_SERVERS, REDIS_URL...) would override the env files.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    env["DOCKER_CONFIG"] = str(Path(plugin).parents[1])
    return run([*args, "config", *extra], cwd=COMPOSE_DIR, env=env, timeout=60)


def docker_compose_model(*env_files: str) -> dict[str, Any] | None:
    result = docker_compose_config(*env_files, extra=("--format", "json"))
    if result is None:
        return None
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model
