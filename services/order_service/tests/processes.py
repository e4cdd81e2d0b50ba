"""Real order_service processes for the tests: Celery workers and event
consumers, on the test database, with their output kept for failure messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection

SERVICE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        lines = [line for line in self.log.read_text().splitlines() if line.startswith("[")]
        return "\n".join(lines[-40:])

    def kill(self) -> None:
        """SIGKILL: no clean-up, no acknowledgement, nothing."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@dataclass
class ProcessRunner:
    """Starts processes of this service; stops whatever is left at the end."""

    tmp_path: Path
    env: dict[str, str] = field(default_factory=dict)
    started: list[ServiceProcess] = field(default_factory=list)

    def start(self, *args: str, **extra_env: str) -> ServiceProcess:
        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "DJANGO_SETTINGS_MODULE": "tests.process_settings",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            **self.env,
            **extra_env,
        }
        log = self.tmp_path / f"{args[0]}-{len(self.started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, *args], cwd=SERVICE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        started = ServiceProcess(process=process, log=log)
        self.started.append(started)
        return started

    def start_worker(self, queue: str, *, threads: int = 0, **extra_env: str) -> ServiceProcess:
        """A worker of one process (`threads`: its pool of threads, as deployed; 0: solo)."""
        pool = ["--pool=threads", f"--concurrency={threads}"] if threads else ["--pool=solo"]
        return self.start(
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            *pool,
            "--loglevel=INFO",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            **extra_env,
        )

    def stop_all(self) -> None:
        for started in self.started:
            if started.process.poll() is None:
                started.process.terminate()
        for started in self.started:
            try:
                started.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                started.process.kill()
                started.process.wait(timeout=10)
