"""Every service has a Dockerfile that builds a small, non-root, production image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _repo import ALL_SERVICES, DJANGO_SERVICES, GATEWAY, NODE_ASSETS, ROOT, Dockerfile, run, tool

DOCKERFILES = {name: ROOT / "services" / name / "Dockerfile" for name in ALL_SERVICES}


@pytest.fixture(params=ALL_SERVICES)
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    path = DOCKERFILES[request.param]
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    return Dockerfile.read(path)


def test_every_service_folder_has_a_dockerfile() -> None:
    folders = sorted(p.name for p in (ROOT / "services").iterdir() if p.is_dir())
    assert folders == sorted(ALL_SERVICES)
    assert [name for name, path in DOCKERFILES.items() if not path.exists()] == []


def test_hadolint_passes_on_every_dockerfile() -> None:
    hadolint = tool("hadolint")
    assert hadolint, "hadolint is not installed: run `bash devstack/tools.sh`"
    result = run([str(hadolint), "--failure-threshold", "info", *map(str, DOCKERFILES.values())])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nCMD python app.py\n")
    result = run([str(tool("hadolint")), str(bad)])
    assert result.returncode == 1
    assert {"DL3007", "DL3008", "DL3015", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_base_image_is_pinned_python_311_slim(dockerfile: Dockerfile) -> None:
    base = dockerfile.args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    froms = [rest for kw, rest in dockerfile.instructions if kw == "FROM"]
    python_stages = ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    if dockerfile.path.parent.name in NODE_ASSETS:
        # Front-end assets come from npm in a first stage; nothing of node reaches the runtime.
        assert re.fullmatch(r"node:\d+\.\d+\.\d+-bookworm-slim", dockerfile.args()["NODE_IMAGE"])
        assert froms == ["${NODE_IMAGE} AS assets", *python_stages]
    else:
        assert froms == python_stages


def test_front_end_assets_come_from_the_npm_lock_file() -> None:
    for service in NODE_ASSETS:
        dockerfile = Dockerfile.read(DOCKERFILES[service])
        assets = dockerfile.stages()[0]
        assert ("COPY", f"services/{service}/package.json services/{service}/package-lock.json ./") in assets
        installs = [rest for kw, rest in assets if kw == "RUN"]
        assert installs == ["npm ci --omit=dev --ignore-scripts --no-audit --no-fund"]
        assert (ROOT / "services" / service / "package-lock.json").exists()


def test_dependencies_come_from_the_hash_locked_file(dockerfile: Dockerfile) -> None:
    service = dockerfile.path.parent.name
    builder = next(s for s in dockerfile.stages() if s[0] == ("FROM", "${PYTHON_IMAGE} AS builder"))
    assert ("COPY", f"services/{service}/requirements.txt /tmp/requirements.txt") in builder
    installs = [rest for kw, rest in builder if kw == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    for flag in ("--require-hashes", "--no-deps", "--no-cache-dir", "-r /tmp/requirements.txt"):
        assert flag in installs[0]


def test_final_stage_is_non_root_without_compilers_or_caches(dockerfile: Dockerfile) -> None:
    final = dockerfile.stages()[-1]
    assert dockerfile.final("USER") == "10001:10001"
    runs = " ".join(rest for kw, rest in final if kw == "RUN")
    assert not re.search(r"apt-get|apk|gcc|build-essential|pip install", runs)
    copies = [rest for kw, rest in final if kw == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv", "--from=builder /app /app"]
    text = dockerfile.path.read_text()
    assert "/root/.cache" not in text
    assert "PIP_NO_CACHE_DIR=1" in text


def test_healthcheck_asks_for_readiness(dockerfile: Dockerfile) -> None:
    healthcheck = dockerfile.final("HEALTHCHECK")
    assert "/health/ready" in healthcheck
    assert "--interval=" in healthcheck
    assert "--timeout=" in healthcheck


def test_production_server_and_settings_from_the_environment(dockerfile: Dockerfile) -> None:
    cmd = dockerfile.final("CMD")
    env = dockerfile.env()
    if dockerfile.path.parent.name == GATEWAY:
        assert cmd == '["python", "-m", "gateway.serve"]'
        assert env["GATEWAY_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
    else:
        assert cmd.startswith('["gunicorn", "config.wsgi:application"')
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings"
        # Bind address and workers come from $PORT / $WEB_CONCURRENCY, not the command.
        assert "--bind" not in cmd
        assert "--workers" not in cmd
    assert "SECRET" not in " ".join(env)  # secrets come at run time, never baked in


def test_the_django_dockerfiles_differ_only_by_the_service_name() -> None:
    reference = DOCKERFILES["user_service"].read_text()
    for name in DJANGO_SERVICES:
        assert DOCKERFILES[name].read_text() == reference.replace("user_service", name), name


def test_one_dockerignore_at_the_build_context_root() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"
    assert {"!libs/comptoir/", "!services/", "**/.env", "services/*/tests/"} <= set(rules)
    assert list(ROOT.glob("services/*/.dockerignore")) == []
