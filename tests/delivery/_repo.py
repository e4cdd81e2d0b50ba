"""Where things are, and the small helpers the delivery tests share."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("COMPTOIR_TOOLS_DIR", str(ROOT / ".devstack" / "tools")))
COMPOSE_DIR = ROOT / "deploy" / "compose"
CHART_DIR = ROOT / "deploy" / "helm" / "comptoir"
WORKFLOWS = ROOT / ".github" / "workflows"
VENV_BIN = ROOT / ".venv" / "bin"
KUBERNETES_VERSION = "1.33.0"

# The platform: the five Django services, the ASGI gateway and the web frontend
# (a Django project with no database that calls the gateway only).
DJANGO_SERVICES = ("user_service", "product_service", "order_service", "payment_service", "email_service")
GATEWAY = "api_gateway"
FRONTEND = "storefront"
ALL_SERVICES = (*DJANGO_SERVICES, GATEWAY, FRONTEND)
# Images with a first stage that installs front-end assets from npm (package-lock.json).
NODE_ASSETS = (GATEWAY, FRONTEND)


def tool(name: str) -> Path | None:
    """A tool installed by devstack/tools.sh, or None."""
    path = TOOLS / "bin" / name
    return path if path.exists() else None


def compose_plugin() -> Path | None:
    plugin = TOOLS / "docker" / "cli-plugins" / "docker-compose"
    if plugin.exists() and shutil.which("docker"):
        return plugin
    return None


def run(
    args: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Dockerfile:
    """The parts of a Dockerfile the tests look at (one logical instruction a line)."""

    path: Path
    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        logical: list[str] = []
        current = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not current and (not line or line.startswith("#")):
                continue
            if line.startswith("#"):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            logical.append(current + line)
            current = ""
        instructions = []
        for line in logical:
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        return cls(path, instructions)

    def stages(self) -> list[list[tuple[str, str]]]:
        stages: list[list[tuple[str, str]]] = []
        for keyword, rest in self.instructions:
            if keyword == "FROM":
                stages.append([])
            if stages:
                stages[-1].append((keyword, rest))
        return stages

    def final(self, keyword: str) -> str:
        values = [rest for kw, rest in self.stages()[-1] if kw == keyword]
        assert values, f"{self.path}: no {keyword} in the final stage"
        return values[-1]

    def args(self) -> dict[str, str]:
        found = {}
        for keyword, rest in self.instructions:
            if keyword == "ARG" and "=" in rest:
                name, _, value = rest.partition("=")
                found[name] = value
        return found

    def env(self) -> dict[str, str]:
        """The final stage's ENV (KEY=VALUE pairs; $PATH left as written)."""
        found: dict[str, str] = {}
        for keyword, rest in self.stages()[-1]:
            if keyword == "ENV":
                for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', rest):
                    found[name] = value.strip('"')
        return found
