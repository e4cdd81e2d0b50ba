"""Helpers for the event backbone's tests beside `comptoir.events.testing` (polling,
reading a topic): publishing notes, headers, offsets, subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from django.db import connections, transaction

from comptoir import kafka_client_config
from comptoir.events import Envelope, dlq_topic, event_settings, publish_event, retry_topic

TESTS_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = TESTS_DIR.parent / "src"


def publish_notes(count: int, *, keys: list[str], start: int = 0, **extra: Any) -> list[Envelope]:
    """`count` test.note-recorded events, seq start.., round-robin over `keys`, one transaction each."""
    envelopes = []
    for seq in range(start, start + count):
        with transaction.atomic():
            envelopes.append(
                publish_event(
                    "test.note-recorded",
                    aggregate_id=keys[seq % len(keys)],
                    payload={"seq": seq, "text": f"note {seq}", **extra},
                )
            )
    return envelopes


def headers_of(message: Message) -> dict[str, str]:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in items}


class Spawner:
    """Starts `python -m django <command>` subprocesses against the test database."""

    def __init__(self, topic: str, tmp_path: Path) -> None:
        self.topic = topic
        self.tmp_path = tmp_path
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def env(self, **extra: str) -> dict[str, str]:
        db = connections["default"].settings_dict
        return {
            **os.environ,
            "PYTHONPATH": f"{TESTS_DIR}{os.pathsep}{SRC_DIR}",
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "EVENTSAPP_NOTES_TOPIC": self.topic,
            "LOG_LEVEL": "WARNING",
            **extra,
        }

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        """`python -m django <args>`: a management command."""
        return self._start(["-m", "django", *args], **extra_env)

    def start_module(self, module: str, **extra_env: str) -> subprocess.Popen[bytes]:
        return self._start(["-m", module], **extra_env)

    def _start(self, args: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{args[-1]}-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=TESTS_DIR,
                env=self.env(**extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, log))
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        for candidate, log in self.processes:
            if candidate is process:
                return log.read_text()
        raise KeyError(process.pid)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def committed_total(group: str, topic: str) -> int:
    """How many messages of `topic` the group has committed (sum of committed offsets)."""
    reader = Consumer({**kafka_client_config(), "group.id": group, "log_level": 3})
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        committed = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in committed)
    finally:
        reader.close()


def own_retry(topic: str, attempt: int) -> str:
    """The test service's retry topic of `topic` for its n-th retry."""
    return retry_topic(topic, attempt, event_settings().service)


def own_dlq(topic: str) -> str:
    """The test service's dead-letter topic of `topic`."""
    return dlq_topic(topic, event_settings().service)
