"""Chooses PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported (the
library reads the variable once, at import): kept apart from `_metrics` so the
settings module can call it without importing the library."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def ensure_multiprocess_dir(service: str) -> str | None:
    """Points PROMETHEUS_MULTIPROC_DIR at a folder shared by this process group.

    An explicit value wins (the devstack sets one per process and empties it
    before starting it). Otherwise, under gunicorn (workers load the settings
    after the fork: the group is named after the master, their parent) and a
    Celery worker (the parent loads them before forking its pool) a fresh folder
    named after that pid is used; elsewhere nothing is set and metrics stay in
    the process.
    """
    current = os.environ.get(MULTIPROC_ENV)
    if current:
        Path(current).mkdir(parents=True, exist_ok=True)
        return current
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program == "gunicorn":
        leader = os.getppid()
    elif program == "celery" and "worker" in sys.argv[1:]:
        leader = os.getpid()
    else:
        return None
    folder = Path(tempfile.gettempdir()) / "comptoir-prometheus" / f"{service}-{leader}"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return str(folder)
