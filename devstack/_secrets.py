"""Secrets of this checkout's platform, generated once and kept under `.devstack/`.

Nothing in the repository carries a usable secret: the first `devstack` command
that needs one draws it at random and stores it in `.devstack/secrets.json`
(mode 0600, git-ignored with the rest of `.devstack/`). Every later start of the
same checkout reads the same value, so databases seeded with it keep working;
`make clean` forgets them with the rest of the local state.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from pathlib import Path

from ._config import STATE_DIR

SECRETS_FILE = STATE_DIR / "secrets.json"


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise SystemExit(f"devstack: {path} is not valid JSON; delete it to draw new secrets") from None
    return {str(key): str(value) for key, value in data.items()}


def secret(name: str, path: Path = SECRETS_FILE) -> str:
    """The checkout's secret called `name`, drawn (32 random bytes, URL-safe) on first use.

    Several devstack commands may draw at once: the read-draw-write runs under an
    exclusive lock, so none loses another's secret (which would change it later).
    """
    known = _load(path)
    if name in known:
        return known[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = _load(path)
        if name not in known:
            known[name] = secrets.token_urlsafe(32)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(known, out, indent=2, sort_keys=True)
            os.replace(temporary, path)
        return known[name]
    finally:
        os.close(lock)  # releases the lock
