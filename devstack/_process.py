"""Background processes with a pid file, a log file and a readiness check.

Every process the devstack starts (PostgreSQL, Redis, Kafka, each service's web,
worker, relay and consumer processes) is one `ManagedProcess`: started in its
own session so it outlives the command that started it, stopped by pid (and its
process group as a last resort), so `down` stops exactly what `up` started.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ecs_logging

from ._config import LOG_DIR, RUN_DIR

_ECS = ecs_logging.StdlibFormatter(exclude_fields=["process", "log.origin", "log.original"])


class StartError(RuntimeError):
    """A process did not become ready before its deadline."""


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no log at {path})"
    content = path.read_text(errors="replace").splitlines()
    return "\n".join(content[-lines:])


def start_line(name: str) -> bytes:
    """What the devstack writes in a process's log as it starts it: an ECS JSON line,
    like every line the platform's processes write (`service.name` devstack)."""
    record = logging.LogRecord("devstack", logging.INFO, __file__, 0, "devstack: starting %s", (name,), None)
    record.__dict__["service.name"] = "devstack"
    return (_ECS.format(record) + "\n").encode()


def wait_until(check: Callable[[], bool], *, deadline_s: float, interval_s: float = 0.2) -> bool:
    """Polls `check` until it returns True or the deadline passes."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001 - a failing probe just means "not yet"
            pass
        if time.monotonic() >= end:
            return False
        time.sleep(interval_s)


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    ready: Callable[[], bool]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    ready_deadline_s: float = 60.0
    stop_deadline_s: float = 20.0
    # Runs before a fresh start (not when the process already runs).
    prepare: Callable[[], object] | None = None

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            state = "Z"
        if state == "Z":
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def rotate_log(self) -> None:
        """Moves the log aside (`<name>.log.1`, replacing the one before): a fresh start's log."""
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))

    def start(self) -> None:
        """Starts the process unless it runs already, then waits until it is ready."""
        if self.running():
            if not wait_until(self.ready, deadline_s=self.ready_deadline_s):
                raise StartError(self._failure("is running but not ready"))
            return
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        if self.prepare is not None:
            self.prepare()
        with self.log_file.open("ab") as log:
            if log.tell() and not _ends_a_line(self.log_file):
                log.write(b"\n")  # the last process left half a line: keep ours whole
            log.write(start_line(self.name))
            log.flush()
            proc = subprocess.Popen(
                list(self.argv),
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
            )
        self.pid_file.write_text(f"{proc.pid}\n")

        def ready_or_dead() -> bool:
            if proc.poll() is not None:
                raise StartError(self._failure(f"exited with code {proc.returncode}"))
            return self.ready()

        end = time.monotonic() + self.ready_deadline_s
        while time.monotonic() < end:
            try:
                if ready_or_dead():
                    return
            except StartError:
                self.pid_file.unlink(missing_ok=True)
                raise
            except Exception:  # noqa: BLE001 - probe not answering yet
                pass
            time.sleep(0.2)
        self.stop()
        raise StartError(self._failure(f"not ready after {self.ready_deadline_s:.0f} s"))

    def stop(self) -> bool:
        """Stops the process; True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, self.stop_signal)
        except ProcessLookupError:
            pass
        if not wait_until(lambda: not _alive(pid), deadline_s=self.stop_deadline_s, interval_s=0.1):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: not _alive(pid), deadline_s=5, interval_s=0.1)
        else:
            # Children left behind in the group (e.g. gunicorn workers) go too.
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.pid_file.unlink(missing_ok=True)
        return True

    def _failure(self, what: str) -> str:
        return f"{self.name} {what}; last lines of {self.log_file}:\n{log_tail(self.log_file)}"


def _ends_a_line(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    if state == "Z":
        # Our own child that exited: reap it so it does not linger.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True
