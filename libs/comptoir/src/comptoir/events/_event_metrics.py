"""Metrics of the relay and the consumers: counters by outcome, retries, dead letters,
and the lag and dead-letter backlog reported off the consuming thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, TopicPartition

from comptoir import _metrics

from ._offsets import partition_lags, topic_sizes
from ._topics import dlq_topic

LAG_REPORT_EVERY_S = 5.0
logger = logging.getLogger("comptoir.events.consumer")


def initialise(service: str, group: str, topics: Sequence[str]) -> None:
    """Creates the group's series at 0, so dashboards and alerts see them before the first failure."""
    for topic in topics:
        for outcome in ("handled", "duplicate", "skipped", "failed"):
            _metrics.CONSUMED.labels(service, group, topic, outcome)
        _metrics.RETRIES.labels(service, group, topic)
        _metrics.DEAD_LETTERS.labels(service, group, topic)


def relay_started(service: str) -> None:
    _metrics.RELAY_FAILURES.labels(service)


def relayed(service: str, topics: list[str], failed: int) -> None:
    for topic in topics:
        _metrics.RELAYED.labels(service, topic).inc()
    if failed:
        _metrics.RELAY_FAILURES.labels(service).inc(failed)


def consumed(service: str, group: str, topic: str, outcome: str) -> None:
    if outcome == "deferred":
        return
    _metrics.CONSUMED.labels(service, group, topic, outcome).inc()


def retried(service: str, group: str, topic: str) -> None:
    _metrics.RETRIES.labels(service, group, topic).inc()


def dead_lettered(service: str, group: str, topic: str) -> None:
    _metrics.DEAD_LETTERS.labels(service, group, topic).inc()


class LagReporter(threading.Thread):
    """Sets the lag of every assigned partition and the size of each DLQ the group
    feeds, off the consumer's loop.

    Those figures take broker round trips (the partitions' ends, committed
    offsets, the DLQs' partitions); asked from the consuming thread they held
    every message behind them for up to a second. The consuming thread only
    hands over its assignment and positions (local to the client) every
    LAG_REPORT_EVERY_S with `offer()`; this thread asks the broker through a
    probe client of its own (same group id, never subscribed). The consuming
    client itself is never called from here: its calls can block while another
    thread is inside poll().
    """

    def __init__(self, service: str, group: str, topics: Sequence[str], probe: Consumer) -> None:
        super().__init__(name=f"lag-report {group}", daemon=True)
        self.service, self.group, self.topics = service, group, list(topics)
        self.probe = probe
        self._halt = threading.Event()
        self._offered = threading.Event()
        self._positions: list[TopicPartition] = []
        self._next_offer = 0.0

    def offer(self, consumer: Consumer) -> None:
        """From the consuming thread: hands over the positions when a report is due."""
        now = time.monotonic()
        if now < self._next_offer or self._offered.is_set():
            return
        self._next_offer = now + LAG_REPORT_EVERY_S
        assigned = consumer.assignment()
        self._positions = consumer.position(assigned) if assigned else []
        self._offered.set()

    def stop(self) -> None:
        self._halt.set()
        self._offered.set()
        self.join(timeout=5.0)
        self.probe.close()

    def run(self) -> None:
        while True:
            self._offered.wait()
            if self._halt.is_set():
                return
            report_lag(self.service, self.group, self.topics, self._positions, self.probe)
            self._offered.clear()


def report_lag(
    service: str, group: str, topics: Sequence[str], positions: list[TopicPartition], probe: Consumer
) -> None:
    """Sets the lag of each of the group's `positions` and the size of each DLQ it feeds,
    asking the broker through `probe` (the ends of every partition in one request per end)."""
    try:
        # No message read from a partition since the assignment: no position yet, the
        # group's committed offset says where it stands (none at all: from the start).
        for (topic, partition), lag in partition_lags(probe, positions, timeout_s=2.0).items():
            _metrics.CONSUMER_LAG.labels(service, group, topic, str(partition)).set(lag)
        dlqs = {topic: dlq_topic(topic, service) for topic in topics}
        sizes = topic_sizes(probe, list(dlqs.values()), timeout_s=2.0)
        for topic, dlq in dlqs.items():
            _metrics.DLQ_MESSAGES.labels(service, group, topic).set(sizes[dlq])
    except Exception as error:  # noqa: BLE001 - metrics never stop consumption
        _log_once(f"lag report failed: {type(error).__name__}: {error}")


_logged: dict[str, float] = {}


def _log_once(message: str, every_s: float = 60.0) -> None:
    now = time.monotonic()
    if now - _logged.get(message, -every_s) >= every_s:
        _logged[message] = now
        logger.warning("consumer metrics: %s", message)
