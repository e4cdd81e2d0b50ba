"""The consumer: reads a service's topics and runs the registered handlers.

For each chunk of a polled batch (at most BATCHED_CHUNK_MAX messages) the
consumer opens one database transaction, writes the chunk's inbox rows
`(group, event_id)` in one statement and runs the handlers of the rows that were
new; a message whose inbox row already exists is a redelivery and is skipped.
When a handler fails, or the chunk holds anything but valid first deliveries
(retries, broken envelopes, contract violations), that chunk is rolled back and
handled again message by message, each in a savepoint of its own, so one failure
costs only its own message. Only after the transaction commits, and after the
failed messages are safely on their retry or dead-letter topic, are the offsets
stored for commit; the client commits what is stored every
CONSUMER_COMMIT_INTERVAL_MS, on a rebalance and when the consumer closes (one
commit request per interval, not a blocking one per batch). A crash anywhere
redelivers at most what was handled since the last commit, and the inbox makes
the redelivery harmless.

Failures: a handler exception sends the message to the service's own
`<service>.<topic>.retry.<n>` (n = the attempt that failed), read by the same
process once RETRY_DELAYS[n-1] seconds have passed since it was written.
Waiting pauses only that retry partition, so other keys and the main topic go
on. After the last retry, or at once for a message that is not a valid
envelope, breaks its contract or names a producer other than its event type's
owner in the catalogue, the message goes to `<service>.<topic>.dlq` with
`x-original-topic/-partition/-offset`, `x-error-type`, `x-error-message`,
`x-attempts`, `x-first-failure-at` and `x-consumer-group` headers. Only the
service's own principal may write its failure topics, so the group header can
be trusted to tell its consumer groups apart. Per-key order holds for messages
handled on their first attempt; a message being retried is handled after later
messages of its key.

The database going away (PostgreSQL restarted or failed over) rolls back the
chunk in progress: the consumer seeks its partitions back to the first message
not committed, drops the connection (Django opens a new one for the next chunk)
and polls again after DB_RETRY_S, until the database answers. It does not exit,
so a database restart needs no consumer restart, and nothing is skipped.

SIGTERM (`stop()`): the message in progress finishes, the batch commits, the
stored offsets are committed and the consumer leaves its group.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError, connections, transaction

from comptoir import request_id_var
from comptoir._kafka_security import kafka_client_config

from . import _event_metrics, _tracing
from ._config import EventSettings, event_settings
from ._context import Delivery, _current
from ._contracts import ContractError, producer_mismatch, topic_for, validate_payload
from ._envelope import Envelope, EnvelopeError
from ._kafka import (
    DELIVERY_TIMEOUT_S,
    H_ATTEMPTS,
    H_DEAD_LETTERED,
    H_ERROR_MESSAGE,
    H_ERROR_TYPE,
    H_FIRST_FAILURE,
    H_GROUP,
    H_ORIGINAL_OFFSET,
    H_ORIGINAL_PARTITION,
    H_ORIGINAL_TOPIC,
    header_pairs,
    producer_config,
)
from ._registry import DEFAULT_PURPOSE, Handler, handlers_for
from ._retention import RetentionSweeper
from ._topics import declare_topics_when_reachable, dlq_topic, parse_retry_topic, retry_topic
from .models import InboxMessage

logger = logging.getLogger("comptoir.events.consumer")

_INBOX = InboxMessage._meta.db_table
INSERT_INBOX = (
    f'INSERT INTO {_INBOX} (consumer, event_id, event_type, topic, partition, "offset") '  # noqa: S608
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
# A chunk's rows as arrays: one statement text whatever the chunk's size, which
# psycopg parses once per process (a VALUES list of 6 parameters per row is
# parsed again for every chunk of more than 8 rows: 9 % of a busy consumer's CPU).
INSERT_INBOX_ROWS = (
    f'INSERT INTO {_INBOX} (consumer, event_id, event_type, topic, partition, "offset") '  # noqa: S608
    "SELECT %s, delivery.* FROM unnest(%s::uuid[], %s::varchar[], %s::varchar[], %s::integer[], "
    '%s::bigint[]) AS delivery (event_id, event_type, topic, partition, "offset") '
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
DELETE_OLD_INBOX = (
    f"DELETE FROM {_INBOX} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {_INBOX} "  # noqa: S608 - ours
    "WHERE consumer = %s AND handled_at < now() - make_interval(secs => %s) LIMIT %s))"
)
ERROR_MESSAGE_MAX = 1000
CLEANUP_EVERY_S = 60.0
# At most this many messages share one transaction and one inbox statement.
BATCHED_CHUNK_MAX = 100
# A batch commits at least this often, so effects show and SIGTERM ends soon.
TRANSACTION_MAX_S = 0.1
# Seconds between tries while the database does not answer.
DB_RETRY_S = 1.0
# A fetch the broker holds while there is nothing to read: it answers as soon as a
# message arrives, so this bounds only the idle polling (at 100 ms, half of the
# idle broker's CPU went to answering them).
IDLE_FETCH_WAIT_MS = 500
# Bytes a lingering consumer's fetch waits for (CONSUMER_LINGER_MS): more than its
# linger ever gathers, so the linger is what ends the fetch.
LINGER_FETCH_MIN_BYTES = 1 << 20


class _Outcome(enum.Enum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    FAILED = "failed"
    DEFERRED = "deferred"


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    retried: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True)
class _Ready:
    """A valid first delivery, checked and waiting for its handler in a batched chunk."""

    message: Message
    partition: tuple[str, int]
    delivery: Delivery
    headers: dict[str, str]
    handler: Handler | None  # None: an event type this group does not handle


class _HandlerFailedError(Exception):
    """A handler failed in a batched chunk: the chunk is rolled back and redone one by one."""


@dataclass(frozen=True)
class _Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]


def _headers(message: Message) -> dict[str, str]:
    return {name: value.decode(errors="replace") for name, value in header_pairs(message)}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class EventConsumer:
    """One consumer group: `<service>.<purpose>` handling the purpose's event types."""

    def __init__(
        self,
        *,
        purpose: str = DEFAULT_PURPOSE,
        group_id: str | None = None,
        handlers: Mapping[str, Handler] | None = None,
        config: EventSettings | None = None,
        using: str = "default",
    ) -> None:
        self.config = config or event_settings()
        self.group = group_id or f"{self.config.service}.{purpose}"
        self.handlers = dict(handlers if handlers is not None else handlers_for(purpose))
        if not self.handlers:
            raise ImproperlyConfigured(f"no event handler is registered for purpose {purpose!r}")
        self.using = using
        self.topics = sorted({topic_for(event_type) for event_type in self.handlers})
        self.retry_topics = [
            retry_topic(topic, n, self.config.service)
            for topic in self.topics
            for n in range(1, len(self.config.retry_delays) + 1)
        ]
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        self._paused: dict[tuple[str, int], float] = {}
        self._producer = Producer(producer_config(self.config.bootstrap_servers))
        self._consumer: Consumer | None = None
        self._sweeper = RetentionSweeper(
            statement=DELETE_OLD_INBOX,
            params=[self.group, self.config.inbox_retention],
            every_s=CLEANUP_EVERY_S,
            using=using,
        )

    def stop(self) -> None:
        """Asks `run()` to finish the message in progress, commit and leave the group."""
        self._stop.set()

    def _new_consumer(self) -> Consumer:
        return Consumer(
            {
                **kafka_client_config(self.config.bootstrap_servers),
                "group.id": self.group,
                # Offsets are stored once handled (store_offsets) and committed by
                # the client in the background, on rebalance and on close.
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "auto.commit.interval.ms": self.config.consumer_commit_interval_ms,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 2000,
                **self._fetch_config(),
                "log_level": 3,
            }
        )

    def _fetch_config(self) -> dict[str, int]:
        """The broker answers a fetch on its first message, or, for a consumer with a
        linger, once the linger has passed, with every message that came meanwhile."""
        linger_ms = self.config.consumer_linger_ms
        if linger_ms <= 0:
            return {"fetch.wait.max.ms": IDLE_FETCH_WAIT_MS}
        return {"fetch.wait.max.ms": linger_ms, "fetch.min.bytes": LINGER_FETCH_MIN_BYTES}

    def _new_probe(self) -> Consumer:
        """A client for the lag reporter's broker queries: same group, never subscribed."""
        return Consumer(
            {
                **kafka_client_config(self.config.bootstrap_servers),
                "group.id": self.group,
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )

    def run(
        self, *, max_seconds: float | None = None, until: Callable[[], bool] | None = None
    ) -> ConsumerStats:
        """Consumes until `stop()`, `max_seconds`, or `until()` turns true after a batch."""
        deadline = time.monotonic() + max_seconds if max_seconds is not None else None
        if not declare_topics_when_reachable(
            self.topics,
            self.config,
            with_failure_topics=True,
            stop=self._stop,
            alive=until,
            deadline=deadline,
        ):
            return self.stats
        consumer = self._consumer = self._new_consumer()
        consumer.subscribe(
            self.topics + self.retry_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        _event_metrics.initialise(self.config.service, self.group, self.topics)
        lag_reporter = _event_metrics.LagReporter(
            self.config.service, self.group, self.topics, self._new_probe()
        )
        lag_reporter.start()
        logger.info("consumer %s: subscribed to %s", self.group, ", ".join(self.topics))
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._resume_due(consumer)
                # poll() returns on the first message; consume(timeout=0) then takes what
                # is already fetched (consume() alone would wait for a full batch).
                first = consumer.poll(0.2)
                if first is not None:
                    more = consumer.consume(num_messages=self.config.consumer_batch_size - 1, timeout=0)
                    self._process_batch(consumer, [first, *more])
                if until is not None and until():
                    break
                lag_reporter.offer(consumer)
                if self._sweeper.due():
                    try:
                        self.delete_old_inbox_rows(budget_s=self._sweeper.budget_s)
                    except (OperationalError, InterfaceError) as error:
                        self._database_unavailable(error)
        finally:
            lag_reporter.stop()
            consumer.close()
            self._consumer = None
            self._producer.flush(DELIVERY_TIMEOUT_S)
            logger.info("consumer %s: left the group (%s)", self.group, self.stats)
        return self.stats

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in partitions:
            self._paused.pop((partition.topic, partition.partition), None)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The client keeps a partition paused across a rebalance, while the revoke
        # above forgot when it was due: a retry partition that comes back would
        # stay paused for good. Take the assignment and resume it all; a retry that
        # is still not due is read again and paused again with its due time.
        consumer.assign(partitions)
        if partitions:
            consumer.resume(partitions)

    def _resume_due(self, consumer: Consumer) -> None:
        now = time.time()
        due = [key for key, at in self._paused.items() if at <= now]
        if due:
            consumer.resume([TopicPartition(topic, partition) for topic, partition in due])
            for key in due:
                del self._paused[key]

    def _process_batch(self, consumer: Consumer, messages: list[Message]) -> None:
        """Handles the polled messages in transactions of at most TRANSACTION_MAX_S each.

        When the database fails under a chunk, the chunk rolled back and nothing from
        it on was committed: the partitions are sought back to it, to be read again
        once the database answers."""
        start = 0
        while start < len(messages) and not self._stop.is_set():
            counted = replace(self.stats)
            try:
                start = self._process_chunk(consumer, messages, start)
            except (OperationalError, InterfaceError) as error:
                self.stats = counted  # what the rolled-back chunk counted did not happen
                self._rewind(consumer, messages[start:])
                self._database_unavailable(error)
                return

    def _rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """Seeks every partition of `messages` back to its first message in them."""
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.error() is not None:
                continue
            key = (str(message.topic()), int(message.partition() or 0))
            offset = int(message.offset() or 0)
            first[key] = min(offset, first.get(key, offset))
        for (topic, partition), offset in first.items():
            consumer.seek(TopicPartition(topic, partition, offset))

    def _database_unavailable(self, error: Exception) -> None:
        """What was in progress rolled back; the connection is dropped (Django opens a
        new one on the next chunk) and the consumer waits DB_RETRY_S before it polls again."""
        logger.warning(
            "consumer %s: database unavailable (%s); retrying in %.0f s", self.group, error, DB_RETRY_S
        )
        with contextlib.suppress(OperationalError, InterfaceError):  # already broken: fine
            connections[self.using].close()
        self._stop.wait(DB_RETRY_S)

    def _process_chunk(self, consumer: Consumer, messages: list[Message], start: int) -> int:
        ready = self._batchable(messages, start)
        if ready is not None:
            try:
                self._process_batched(consumer, ready)
                return start + len(ready)
            except _HandlerFailedError:
                pass  # rolled back: the same messages again, one savepoint each
        return self._process_one_by_one(consumer, messages, start)

    def _batchable(self, messages: list[Message], start: int) -> list[_Ready] | None:
        """The chunk from `start` as checked first deliveries, or None when any needs the careful path."""
        ready: list[_Ready] = []
        for message in messages[start : start + BATCHED_CHUNK_MAX]:
            topic = str(message.topic())
            if message.error() is not None or parse_retry_topic(topic, self.config.service) is not None:
                return None
            partition = (topic, int(message.partition() or 0))
            if partition in self._paused:
                return None
            try:
                event = Envelope.from_json(message.value())
            except EnvelopeError:
                return None
            handler = self.handlers.get(event.event_type)
            if handler is not None:
                try:
                    validate_payload(event.event_type, event.schema_version, event.payload)
                except ContractError:
                    return None
                if producer_mismatch(event.event_type, event.producer) is not None:
                    return None  # dead-lettered on the careful path
            delivery = Delivery(
                group=self.group,
                topic=topic,
                partition=partition[1],
                offset=int(message.offset() or 0),
                attempt=1,
                event=event,
            )
            ready.append(_Ready(message, partition, delivery, _headers(message), handler))
        return ready or None

    def _process_batched(self, consumer: Consumer, ready: list[_Ready]) -> None:
        """One transaction, one inbox statement, the handlers in order; raises _HandlerFailedError."""
        outcomes: list[_Outcome] = []
        with transaction.atomic(using=self.using):
            new = self._record_batch_in_inbox([item.delivery for item in ready if item.handler is not None])
            for item in ready:
                event = item.delivery.event
                if item.handler is None:
                    outcomes.append(_Outcome.SKIPPED)
                    continue
                if event.event_id not in new:
                    outcomes.append(_Outcome.DUPLICATE)
                    continue
                new.discard(event.event_id)  # a second copy in the same chunk is a duplicate
                self._run_handler(item)
                outcomes.append(_Outcome.HANDLED)
        handled: dict[tuple[str, int], int] = {}
        for item, outcome in zip(ready, outcomes, strict=True):
            handled[item.partition] = item.delivery.offset + 1
            _event_metrics.consumed(self.config.service, self.group, str(item.message.topic()), outcome.value)
            if outcome is _Outcome.HANDLED:
                self.stats.handled += 1
            elif outcome is _Outcome.DUPLICATE:
                self.stats.duplicates += 1
            else:
                self.stats.skipped += 1
        self._store_offsets(consumer, handled)

    def _store_offsets(self, consumer: Consumer, handled: dict[tuple[str, int], int]) -> None:
        """Marks `handled` (partition -> next offset) for the client's next commit.

        A partition taken away by a rebalance meanwhile cannot be stored: its new
        owner reads those messages again and the inbox skips them."""
        if not handled:
            return
        try:
            consumer.store_offsets(
                offsets=[TopicPartition(topic, part, offset) for (topic, part), offset in handled.items()]
            )
        except KafkaException as error:
            logger.warning("consumer %s: offsets not stored (%s); they will be read again", self.group, error)

    def _run_handler(self, item: _Ready) -> None:
        delivery, handler = item.delivery, item.handler
        assert handler is not None
        delivery_token = _current.set(delivery)
        request_token = request_id_var.set(delivery.event.correlation_id)
        try:
            with _tracing.handling(self.group, delivery, item.headers):
                handler(delivery.event)
        except Exception as error:
            raise _HandlerFailedError(str(error)) from error
        finally:
            request_id_var.reset(request_token)
            _current.reset(delivery_token)

    def _record_batch_in_inbox(self, deliveries: list[Delivery]) -> set[uuid.UUID]:
        """Inserts the inbox rows of `deliveries` in one statement; returns the event ids that were new."""
        if not deliveries:
            return set()
        events = [delivery.event for delivery in deliveries]
        params: list[Any] = [
            self.group,
            [event.event_id for event in events],
            [event.event_type for event in events],
            [delivery.topic for delivery in deliveries],
            [delivery.partition for delivery in deliveries],
            [delivery.offset for delivery in deliveries],
        ]
        with connections[self.using].cursor() as cursor:
            cursor.execute(INSERT_INBOX_ROWS, params)
            return {row[0] for row in cursor.fetchall()}

    def _process_one_by_one(self, consumer: Consumer, messages: list[Message], start: int) -> int:
        handled: dict[tuple[str, int], int] = {}
        outgoing: list[_Outgoing] = []
        deferred: set[tuple[str, int]] = set()
        began = time.monotonic()
        index = start
        with transaction.atomic(using=self.using):
            while index < len(messages):
                if self._stop.is_set() or time.monotonic() - began > TRANSACTION_MAX_S:
                    break
                message = messages[index]
                index += 1
                error = message.error()
                if error is not None:
                    logger.warning("consumer %s: %s", self.group, error)
                    continue
                partition = (str(message.topic()), int(message.partition() or 0))
                if partition in deferred or partition in self._paused:
                    continue
                outcome = self._process(consumer, message, outgoing)
                _event_metrics.consumed(self.config.service, self.group, str(message.topic()), outcome.value)
                if outcome is _Outcome.DEFERRED:
                    deferred.add(partition)
                    continue
                handled[partition] = int(message.offset() or 0) + 1
        self._send(outgoing)
        self._store_offsets(consumer, handled)
        return index

    def _send(self, outgoing: list[_Outgoing]) -> None:
        """Puts failed messages on their retry or dead-letter topic; raises unless all are acknowledged."""
        if not outgoing:
            return
        failures: list[str] = []

        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(f"{message.topic()}: {error}")

        for item in outgoing:
            self._producer.produce(
                item.topic, key=item.key, value=item.value, headers=item.headers, on_delivery=report
            )
        remaining = self._producer.flush(DELIVERY_TIMEOUT_S + 5)
        if remaining or failures:
            raise RuntimeError(f"could not hand failed messages to retry/DLQ topics: {remaining} {failures}")

    def _process(self, consumer: Consumer, message: Message, outgoing: list[_Outgoing]) -> _Outcome:
        """One message, outside the batched path: where it stands in its retries, whether
        it may be handled at all, then its handler in a savepoint with its inbox row."""
        topic = str(message.topic())
        headers = _headers(message)
        position = self._attempt_of(consumer, message, topic, headers)
        if isinstance(position, _Outcome):
            return position
        origin, attempt = position
        admitted = self._admit(message, origin, headers, attempt, outgoing)
        if isinstance(admitted, _Outcome):
            return admitted
        event, handler = admitted
        delivery = Delivery(
            group=self.group,
            topic=topic,
            partition=int(message.partition() or 0),
            offset=int(message.offset() or 0),
            attempt=attempt,
            event=event,
        )
        return self._handle_one(message, origin, headers, delivery, handler, outgoing)

    def _attempt_of(
        self, consumer: Consumer, message: Message, topic: str, headers: dict[str, str]
    ) -> tuple[str, int] | _Outcome:
        """(original topic, attempt number); or SKIPPED for another group's retry, DEFERRED
        (its partition paused until then) for a retry that is not due yet."""
        retry = parse_retry_topic(topic, self.config.service)
        if retry is None:
            return topic, 1
        origin, n = retry
        if headers.get(H_GROUP) != self.group:
            self.stats.skipped += 1
            return _Outcome.SKIPPED  # another group's retry
        delay = self.config.retry_delays[n - 1] if n <= len(self.config.retry_delays) else 0.0
        due = message.timestamp()[1] / 1000 + delay
        if due > time.time():
            partition = TopicPartition(topic, int(message.partition() or 0), int(message.offset() or 0))
            consumer.pause([partition])
            consumer.seek(partition)
            self._paused[(topic, partition.partition)] = due
            return _Outcome.DEFERRED
        return origin, int(headers.get(H_ATTEMPTS, n)) + 1

    def _admit(
        self,
        message: Message,
        origin: str,
        headers: dict[str, str],
        attempt: int,
        outgoing: list[_Outgoing],
    ) -> tuple[Envelope, Handler] | _Outcome:
        """The event and its handler; or SKIPPED (no handler here), or FAILED straight to the
        DLQ for a broken envelope, a contract violation or a producer that does not own it."""
        try:
            event = Envelope.from_json(message.value())
        except EnvelopeError as error:
            self._route_failure(message, origin, headers, attempt, error, outgoing, final=True)
            return _Outcome.FAILED
        handler = self.handlers.get(event.event_type)
        if handler is None:
            self.stats.skipped += 1
            return _Outcome.SKIPPED  # an event type this group does not handle, on a shared topic
        try:
            validate_payload(event.event_type, event.schema_version, event.payload)
        except ContractError as error:
            self._route_failure(message, origin, headers, attempt, error, outgoing, final=True)
            return _Outcome.FAILED
        forged = producer_mismatch(event.event_type, event.producer)
        if forged is not None:
            logger.warning(
                "consumer %s: %s %s dead-lettered: %s", self.group, event.event_type, event.event_id, forged
            )
            self._route_failure(message, origin, headers, attempt, forged, outgoing, final=True)
            return _Outcome.FAILED
        return event, handler

    def _handle_one(
        self,
        message: Message,
        origin: str,
        headers: dict[str, str],
        delivery: Delivery,
        handler: Handler,
        outgoing: list[_Outgoing],
    ) -> _Outcome:
        """The handler and the inbox row in one savepoint; a failure goes to its retry topic."""
        event = delivery.event
        delivery_token = _current.set(delivery)
        request_token = request_id_var.set(event.correlation_id)
        try:
            with _tracing.handling(self.group, delivery, headers), transaction.atomic(using=self.using):
                if not self._record_in_inbox(event, delivery):
                    self.stats.duplicates += 1
                    return _Outcome.DUPLICATE
                handler(event)
        except Exception as error:  # any handler failure is retried
            if connections[self.using].needs_rollback:
                raise  # the chunk's transaction is broken (its connection lost): redone whole
            logger.warning(
                "consumer %s: %s %s failed (attempt %d): %s: %s",
                self.group,
                event.event_type,
                event.event_id,
                delivery.attempt,
                type(error).__name__,
                error,
            )
            self._route_failure(message, origin, headers, delivery.attempt, error, outgoing, final=False)
            return _Outcome.FAILED
        finally:
            request_id_var.reset(request_token)
            _current.reset(delivery_token)
        self.stats.handled += 1
        return _Outcome.HANDLED

    def _record_in_inbox(self, event: Envelope, delivery: Delivery) -> bool:
        with connections[self.using].cursor() as cursor:
            cursor.execute(
                INSERT_INBOX,
                [
                    self.group,
                    event.event_id,
                    event.event_type,
                    delivery.topic,
                    delivery.partition,
                    delivery.offset,
                ],
            )
            return bool(cursor.rowcount == 1)

    def _route_failure(
        self,
        message: Message,
        origin: str,
        headers: dict[str, str],
        attempt: int,
        error: Exception,
        outgoing: list[_Outgoing],
        *,
        final: bool,
    ) -> None:
        failure = {
            H_ORIGINAL_TOPIC: headers.get(H_ORIGINAL_TOPIC, str(message.topic())),
            H_ORIGINAL_PARTITION: headers.get(H_ORIGINAL_PARTITION, str(message.partition())),
            H_ORIGINAL_OFFSET: headers.get(H_ORIGINAL_OFFSET, str(message.offset())),
            H_ATTEMPTS: str(attempt),
            H_FIRST_FAILURE: headers.get(H_FIRST_FAILURE, _now_iso()),
            H_ERROR_TYPE: f"{type(error).__module__}.{type(error).__qualname__}",
            H_ERROR_MESSAGE: str(error)[:ERROR_MESSAGE_MAX],
            H_GROUP: self.group,
        }
        if final or attempt > len(self.config.retry_delays):
            target = dlq_topic(origin, self.config.service)
            failure[H_DEAD_LETTERED] = _now_iso()
            self.stats.dead_lettered += 1
            _event_metrics.dead_lettered(self.config.service, self.group, origin)
        else:
            target = retry_topic(origin, attempt, self.config.service)
            self.stats.retried += 1
            _event_metrics.retried(self.config.service, self.group, origin)
        kept: list[tuple[str, str | bytes | None]] = [
            (name, value) for name, value in header_pairs(message) if not name.startswith("x-")
        ]
        outgoing.append(
            _Outgoing(
                topic=target,
                key=message.key(),
                value=message.value(),
                headers=kept + [(name, value.encode()) for name, value in failure.items()],
            )
        )

    def delete_old_inbox_rows(self, *, budget_s: float = float("inf")) -> int:
        """Deletes this group's inbox rows past INBOX_RETENTION in chunks (by default until none is left)."""
        return self._sweeper.sweep(budget_s=budget_s)
