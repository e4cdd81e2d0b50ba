"""The outbox relay: publishes pending outbox rows to Kafka, then marks them sent.

One batch is one transaction: lock up to RELAY_BATCH_SIZE pending rows with
`FOR UPDATE SKIP LOCKED` (so several relays share the work without waiting on
each other), produce them with an idempotent producer (`acks=all`), wait for
the broker's acknowledgement of each, and mark exactly the acknowledged rows
sent. A crash after the acknowledgement and before the commit publishes those
rows again on restart: delivery is at least once, and consumers deduplicate on
the event id through their inbox.

The relay sleeps on PostgreSQL LISTEN (publish_event NOTIFYs after commit)
with a short poll as a safety net, drains while full batches come back, and
deletes sent rows older than OUTBOX_RETENTION in short chunks, between
batches (see `_retention`).

Quarantine: a row the broker refuses for good (`PERMANENT_ERRORS`: too large,
topic not authorized or unknown...) counts an attempt; after OUTBOX_MAX_ATTEMPTS
it is quarantined (`quarantined_at`): kept with its last error for an operator,
no longer relayed, counted by `comptoir_outbox_quarantined` (alert
ComptoirOutboxQuarantined). A broker that is down or slow counts nothing.

PostgreSQL unavailable (restarted, failed over, a connection cut): the batch in
progress rolls back (its rows are sent again later, which the inbox absorbs),
the relay logs a warning, drops its connection and tries again every
`DB_RETRY_S`; it does not stop, so a database restart needs no process restart.

The relay runs as a process of its own (`manage.py outbox_relay`) or as a thread
of the service's consumer process (`manage.py consume_events --with-relay`,
`RelayThread`): one Python process less per service. The thread keeps its own
heartbeat (`probe live relay`) and its metrics are served with the consumer's;
if its loop fails, the consumer is stopped and the process exits non-zero, so the
supervisor restarts both rather than leave a consumer without its relay.

With several relays running, two events of one aggregate written close together
may be published by different relays in either order; run one relay per service
(several only for availability) where that matters.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from django.db import InterfaceError, OperationalError, connections, transaction

from . import _event_metrics, _tracing
from ._config import EventSettings, event_settings
from ._kafka import DELIVERY_TIMEOUT_S, producer_config
from ._outbox import NOTIFY_CHANNEL
from ._retention import RetentionSweeper
from ._topics import declare_topics, declare_topics_when_reachable, declared_topic_names
from .models import OutboxMessage

logger = logging.getLogger("comptoir.events.relay")

_TABLE = OutboxMessage._meta.db_table
SELECT_PENDING = (
    f"SELECT id, topic, key, envelope, headers FROM {_TABLE} "  # noqa: S608 - table name is ours
    "WHERE sent_at IS NULL AND quarantined_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)
MARK_SENT = f"UPDATE {_TABLE} SET sent_at = now() WHERE id = ANY(%s)"  # noqa: S608
RECORD_REFUSAL = (
    f"UPDATE {_TABLE} SET attempts = attempts + 1, last_error = %s, "  # noqa: S608
    "quarantined_at = CASE WHEN attempts + 1 >= %s THEN now() END WHERE id = %s "
    "RETURNING attempts, quarantined_at IS NOT NULL"
)
# Broker or client answers that no retry of the same row can change.
PERMANENT_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.POLICY_VIOLATION,
        KafkaError._INVALID_ARG,
    }
)
ERROR_TEXT_LIMIT = 2000
DELETE_SENT = (
    f"DELETE FROM {_TABLE} WHERE id IN (SELECT id FROM {_TABLE} "  # noqa: S608
    "WHERE sent_at < now() - make_interval(secs => %s) LIMIT %s)"
)
CLEANUP_EVERY_S = 60.0
WAIT_SLICE_S = 0.25
# Seconds between tries while PostgreSQL cannot be reached.
DB_RETRY_S = 1.0


@dataclass
class RelayStats:
    sent: int = 0
    failed: int = 0
    batches: int = 0
    deleted: int = 0
    errors: list[str] = field(default_factory=list)


class OutboxRelay:
    """Moves outbox rows to Kafka. `run()` loops until `stop()`; `relay_once()` does one batch."""

    def __init__(self, *, config: EventSettings | None = None, using: str = "default") -> None:
        self.config = config or event_settings()
        self.using = using
        self.stats = RelayStats()
        self._stop = threading.Event()
        self._producer = Producer(producer_config(self.config.bootstrap_servers))
        self._known_topics: set[str] = set()
        self._listener: psycopg.Connection[Any] | None = None
        self._last_batch_failed = False
        # The database session on which `synchronous_commit` is off (see _commit_asynchronously).
        self._asynchronous_session: object | None = None
        self._sweeper = RetentionSweeper(
            statement=DELETE_SENT, params=[self.config.outbox_retention], every_s=CLEANUP_EVERY_S, using=using
        )

    def stop(self) -> None:
        """Asks `run()` to return after the batch in progress."""
        self._stop.set()

    def relay_once(self) -> int:
        """Publishes one batch of pending rows; returns how many were marked sent."""
        connection = connections[self.using]
        try:
            return self._relay_batch(connection)
        except BaseException:
            self._asynchronous_session = None  # a rollback undid the SET, if this batch sent it
            raise

    def _relay_batch(self, connection: Any) -> int:
        with transaction.atomic(using=self.using), connection.cursor() as cursor:
            self._commit_asynchronously(connection, cursor)
            cursor.execute(SELECT_PENDING, [self.config.relay_batch_size])
            rows = cursor.fetchall()
            if not rows:
                return 0
            self._ensure_topics({row[1] for row in rows})
            acknowledged: list[int] = []
            acknowledged_topics: list[str] = []
            failures: list[str] = []
            refused: dict[int, str] = {}  # row id -> a permanent refusal

            def on_delivery(row_id: int) -> Callable[[KafkaError | None, Message], None]:
                def report(error: KafkaError | None, message: Message) -> None:
                    if error is None:
                        acknowledged.append(row_id)
                        acknowledged_topics.append(str(message.topic()))
                    else:
                        failures.append(f"{message.topic()}: {error}")
                        if error.code() in PERMANENT_ERRORS:
                            refused[row_id] = str(error)

                return report

            for row_id, topic, key, envelope, headers in rows:
                header_values: dict[str, str] = json.loads(headers)
                with _tracing.producing(topic, key, header_values.get("traceparent")) as traceparent:
                    try:
                        self._produce(
                            topic, key, envelope, header_values, on_delivery(row_id), traceparent=traceparent
                        )
                    except KafkaException as error:  # refused before it left (e.g. too large)
                        failures.append(f"{topic}: {error}")
                        if error.args[0].code() not in PERMANENT_ERRORS:
                            raise
                        refused[row_id] = str(error.args[0])
            remaining = self._producer.flush(DELIVERY_TIMEOUT_S + 5)
            if remaining:
                failures.append(f"{remaining} message(s) not acknowledged in time")
            if acknowledged:
                self._mark_sent(cursor, acknowledged)
            if refused:
                self._record_refusals(cursor, refused)
        self._last_batch_failed = bool(failures)
        _event_metrics.relayed(self.config.service, acknowledged_topics, len(rows) - len(acknowledged))
        self.stats.batches += 1
        self.stats.sent += len(acknowledged)
        if failures:
            self.stats.failed += len(rows) - len(acknowledged)
            self.stats.errors = (self.stats.errors + failures)[-20:]
            logger.warning(
                "relay: %d of %d not delivered: %s", len(rows) - len(acknowledged), len(rows), failures[0]
            )
        return len(acknowledged)

    def _commit_asynchronously(self, connection: Any, cursor: Any) -> None:
        """A sent mark lost in a crash only means a resend, which the inbox absorbs:
        the relay's transactions need not wait for the WAL flush. Set once per
        session (the relay's connection does relay work only), not once per batch."""
        if self._asynchronous_session is not connection.connection:
            cursor.execute("SET synchronous_commit TO OFF")
            self._asynchronous_session = connection.connection

    def _produce(
        self,
        topic: str,
        key: str,
        envelope: str,
        header_values: dict[str, str],
        callback: Callable[[KafkaError | None, Message], None],
        *,
        traceparent: str | None = None,
    ) -> None:
        if traceparent:
            # The relay's own span: consumers continue the trace from it.
            header_values["traceparent"] = traceparent
        for _ in range(1000):
            try:
                self._producer.produce(
                    topic,
                    key=key.encode(),
                    value=envelope.encode(),
                    headers=[(name, value.encode()) for name, value in header_values.items()],
                    on_delivery=callback,
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        raise BufferError("producer queue stayed full")

    def _mark_sent(self, cursor: Any, ids: list[int]) -> None:
        cursor.execute(MARK_SENT, [ids])

    def _record_refusals(self, cursor: Any, refused: dict[int, str]) -> None:
        """Counts a permanent refusal of each row; quarantines those out of attempts."""
        for row_id, error in refused.items():
            cursor.execute(
                RECORD_REFUSAL, [error[:ERROR_TEXT_LIMIT], self.config.outbox_max_attempts, row_id]
            )
            attempts, quarantined = cursor.fetchone()
            if quarantined:
                logger.error(
                    "relay: outbox row %d quarantined after %d refused publishes: %s", row_id, attempts, error
                )

    def _ensure_topics(self, topics: set[str]) -> None:
        missing = topics - self._known_topics
        if missing:
            declare_topics(missing, self.config, with_failure_topics=False)
            self._known_topics |= missing

    def delete_old_sent(self, *, budget_s: float = float("inf")) -> int:
        """Deletes sent rows past OUTBOX_RETENTION in chunks (by default until none is left)."""
        deleted = self._sweeper.sweep(budget_s=budget_s)
        self.stats.deleted += deleted
        return deleted

    def _listen(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed:
            params = connections[self.using].settings_dict
            self._listener = psycopg.connect(
                dbname=params["NAME"],
                user=params["USER"],
                password=params["PASSWORD"],
                host=params["HOST"] or None,
                port=params["PORT"] or None,
                autocommit=True,
            )
            self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return self._listener

    def _wait_for_work(self, timeout_s: float) -> None:
        """Returns on a NOTIFY, after `timeout_s`, or at once if one came meanwhile."""
        try:
            listener = self._listen()
            deadline = time.monotonic() + timeout_s
            # Short slices, so that stop() (SIGTERM) is seen within WAIT_SLICE_S.
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if any(True for _ in listener.notifies(timeout=min(remaining, WAIT_SLICE_S), stop_after=1)):
                    return
        except psycopg.Error as error:
            logger.warning("relay: LISTEN connection lost (%s); polling", error)
            if self._listener is not None:
                self._listener.close()
            self._stop.wait(timeout_s)

    def run(
        self, *, max_seconds: float | None = None, heartbeat: Callable[[], object] | None = None
    ) -> RelayStats:
        """Relays until `stop()` (or `max_seconds`); returns what it did. `heartbeat` is
        called on every turn of the loop (the process's liveness), broker down or not."""
        self._listen()
        deadline = time.monotonic() + max_seconds if max_seconds is not None else None
        declare_topics_when_reachable(
            declared_topic_names(),
            self.config,
            with_failure_topics=False,
            stop=self._stop,
            alive=heartbeat,
            deadline=deadline,
        )
        _event_metrics.relay_started(self.config.service)
        logger.info("relay: started")
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if heartbeat is not None:
                heartbeat()
            try:
                sent = self.relay_once()
                if self._sweeper.due():  # full batches or not: the sweep keeps pace with the writes
                    self.delete_old_sent(budget_s=self._sweeper.budget_s)
            except (OperationalError, InterfaceError) as error:
                self._database_unavailable(error)
                continue
            if sent >= self.config.relay_batch_size:
                continue
            if self._last_batch_failed:
                self._stop.wait(1.0)  # the broker refuses: do not spin
            wait = self.config.relay_poll_interval
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            self._wait_for_work(wait)
        self.close()
        logger.info("relay: stopped after %d sent in %d batches", self.stats.sent, self.stats.batches)
        return self.stats

    def _database_unavailable(self, error: Exception) -> None:
        """The batch rolled back; the connection is dropped (Django opens a new one on
        the next batch) and the relay waits DB_RETRY_S before it tries again."""
        logger.warning("relay: database unavailable (%s); retrying in %.0f s", error, DB_RETRY_S)
        with contextlib.suppress(OperationalError, InterfaceError):  # already broken: fine
            connections[self.using].close()
        self._stop.wait(DB_RETRY_S)

    def close(self) -> None:
        self._producer.flush(DELIVERY_TIMEOUT_S)
        if self._listener is not None:
            self._listener.close()
            self._listener = None


class RelayThread:
    """An `OutboxRelay` looping in a thread of another process (the consumer's).

    `on_exit` runs when the loop ends for any reason (the host process stops with
    it); a loop that failed, or ended without `stop()`, leaves its error in `error`.
    """

    def __init__(
        self,
        relay: OutboxRelay,
        *,
        heartbeat: Callable[[], object] | None = None,
        on_exit: Callable[[], object] | None = None,
    ) -> None:
        self.relay = relay
        self.error: BaseException | None = None
        self._heartbeat = heartbeat
        self._on_exit = on_exit
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.relay.run(heartbeat=self._heartbeat)
            if not self._stopping.is_set():
                self.error = RuntimeError("the relay loop ended without being asked to stop")
        except BaseException as error:  # any failure ends the host process
            self.error = error
            logger.exception("relay: the relay thread failed; its process stops")
        finally:
            connections.close_all()  # this thread's own database connections
            if self._on_exit is not None:
                self._on_exit()

    def request_stop(self) -> None:
        """Asks the loop to stop after its batch in progress (safe in a signal handler)."""
        self._stopping.set()
        self.relay.stop()

    def stop(self, *, timeout_s: float = DELIVERY_TIMEOUT_S + 10) -> None:
        """`request_stop()`, then waits for the loop to end (its producer flushed, its
        LISTEN connection closed)."""
        self.request_stop()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.error = self.error or TimeoutError(f"the relay did not stop within {timeout_s:.0f} s")
