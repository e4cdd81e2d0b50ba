"""Fixtures reaching the real infrastructure that `make test` starts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["comptoir.testing"]

REPO_ROOT = Path(__file__).resolve().parents[3]


def devstack(*args: str) -> None:
    """Runs `python -m devstack ...` (used to stop and restart Kafka on purpose)."""
    subprocess.run([sys.executable, "-m", "devstack", *args], cwd=REPO_ROOT, check=True, timeout=180)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database of one's own when DJANGO_TEST_DATABASE_NAME names one."""
    name = os.environ.get("DJANGO_TEST_DATABASE_NAME")
    if name:
        from django.db import connections

        connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = name


@pytest.fixture(scope="session")
def celery_worker_process() -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker, in its own process, consuming the chassis test queue."""
    tests_dir = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{tests_dir}{os.pathsep}{tests_dir.parent / 'src'}"}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "testproject",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=tests_dir,
        env=env,
    )
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)
