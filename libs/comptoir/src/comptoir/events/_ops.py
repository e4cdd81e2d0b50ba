"""What the operations console reads and does with a service's event backbone:
the outbox backlog, each consumer group's lag, the dead letters (list, show,
replay once, purge).

Everything is asked of the broker with the service's own Kafka credentials:
its consumer groups are `<service>.<purpose>` (its principal may READ them,
which lets it DESCRIBE their committed offsets), its dead-letter topics
`<service>.<topic>.dlq` are its own. A letter is replayed at most once through
here: the fact is kept in `ReplayedDeadLetter`, written in the same transaction
that waits for the broker's acknowledgement of the replayed message.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException
from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from comptoir._kafka_security import kafka_client_config

from ._config import event_settings
from ._contracts import topic_for
from ._dlq import DeadLetter, get_dead_letter, list_dead_letters, parse_id, replay_dead_letter
from ._offsets import partition_lags, topic_partitions, topic_sizes
from ._registry import handlers_for, purposes
from ._topics import dlq_topic, retry_topic
from .models import OutboxMessage, ReplayedDeadLetter

BROKER_TIMEOUT_S = 5.0


class BrokerUnavailable(Exception):
    """The broker did not answer a query of the operations API."""


class AlreadyReplayed(Exception):
    def __init__(self, record: ReplayedDeadLetter) -> None:
        super().__init__(f"{record.letter_id} was replayed to {record.replayed_to} at {record.replayed_at}")
        self.record = record


def _service() -> str:
    return str(settings.COMPTOIR["SERVICE_NAME"])


def _load_handlers() -> None:
    """The handlers register themselves when `<app>/handlers.py` is imported (the
    consumer process does it at start; a web process does it here, once)."""
    autodiscover_modules("handlers")


def outbox_status(*, now: datetime | None = None) -> dict[str, Any]:
    """Pending rows, the age of the oldest, and rows the relay published in the last hour
    (sent rows are kept OUTBOX_RETENTION seconds, an hour by default)."""
    now = now or timezone.now()
    pending = OutboxMessage.objects.filter(sent_at__isnull=True)
    oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
    return {
        "pending": pending.count(),
        "oldest_pending_age_s": round((now - oldest).total_seconds(), 3) if oldest else None,
        "published_last_hour": OutboxMessage.objects.filter(sent_at__gte=now - timedelta(hours=1)).count(),
    }


@dataclass(frozen=True)
class ConsumerGroup:
    group: str
    topics: list[str]  # event topics and this service's retry topics of them


def consumer_groups() -> list[ConsumerGroup]:
    """The service's consumer groups (one per handler purpose) and the topics each reads."""
    _load_handlers()
    config = event_settings()
    groups = []
    for purpose in purposes():
        topics = sorted({topic_for(event_type) for event_type in handlers_for(purpose)})
        retries = [
            retry_topic(topic, n, config.service)
            for topic in topics
            for n in range(1, len(config.retry_delays) + 1)
        ]
        groups.append(ConsumerGroup(group=f"{config.service}.{purpose}", topics=topics + retries))
    return groups


def dead_letter_topics() -> list[str]:
    """This service's dead-letter topics: one per event topic it handles."""
    _load_handlers()
    service = _service()
    topics = {topic_for(event_type) for purpose in purposes() for event_type in handlers_for(purpose)}
    return sorted(dlq_topic(topic, service) for topic in topics)


def _probe(group: str) -> Consumer:
    """A client that asks the broker about `group` without ever joining it."""
    return Consumer(
        {
            **kafka_client_config(settings.KAFKA_BOOTSTRAP_SERVERS),
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )


def consumer_lag() -> list[dict[str, Any]]:
    """Per group, topic and partition: end offset minus the group's committed offset
    (the whole partition when the group committed nothing there yet)."""
    rows: list[dict[str, Any]] = []
    for group in consumer_groups():
        probe = _probe(group.group)
        try:
            partitions = [
                tp
                for topic in group.topics
                for tp in topic_partitions(probe, topic, timeout_s=BROKER_TIMEOUT_S)
            ]
            # No position of our own: the group's committed offsets say where it stands.
            lags = partition_lags(probe, partitions, timeout_s=BROKER_TIMEOUT_S)
            rows.extend(
                {"group": group.group, "topic": topic, "partition": partition, "lag": lag}
                for (topic, partition), lag in lags.items()
            )
        except KafkaException as error:
            raise BrokerUnavailable(str(error)) from error
        finally:
            probe.close()
    return rows


def dead_letter_counts() -> list[dict[str, Any]]:
    """How many messages each of the service's dead-letter topics holds now."""
    topics = dead_letter_topics()
    if not topics:
        return []
    probe = _probe(f"{_service()}.ops-{uuid.uuid4().hex[:8]}")
    try:
        sizes = topic_sizes(probe, topics, timeout_s=BROKER_TIMEOUT_S)
        return [{"topic": topic, "count": count} for topic, count in sizes.items()]
    except KafkaException as error:
        raise BrokerUnavailable(str(error)) from error
    finally:
        probe.close()


def events_status() -> dict[str, Any]:
    return {
        "service": _service(),
        "outbox": outbox_status(),
        "consumers": consumer_lag(),
        "dead_letters": dead_letter_counts(),
    }


# Dead letters -------------------------------------------------------------------------------


def resolve_dead_letter_topic(topic: str) -> str | None:
    """The service's dead-letter topic named by `topic` (an event topic or its `.dlq` name);
    None when the service has no such dead-letter topic."""
    own = dead_letter_topics()
    candidate = topic if topic.endswith(".dlq") else dlq_topic(topic, _service())
    return candidate if candidate in own else None


def _iso_ms(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _attempts(letter: DeadLetter) -> int | None:
    raw = letter.header("x-attempts")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def letter_summary(letter: DeadLetter, replayed: ReplayedDeadLetter | None) -> dict[str, Any]:
    error_type, error_message = letter.header("x-error-type"), letter.header("x-error-message")
    error = ": ".join(part for part in (error_type, error_message) if part)
    return {
        "id": letter.id,
        "topic": letter.topic,
        "event_type": letter.header("event_type"),
        "event_id": letter.header("event_id"),
        "error": error or None,
        "failed_at": letter.header("x-dead-lettered-at") or _iso_ms(letter.timestamp_ms),
        "attempts": _attempts(letter),
        "replayed_at": replayed.replayed_at if replayed else None,
    }


def letter_detail(letter: DeadLetter, replayed: ReplayedDeadLetter | None) -> dict[str, Any]:
    raw = letter.value or b""
    payload: Any
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = raw.decode(errors="replace")
    return {
        **letter_summary(letter, replayed),
        "partition": letter.partition,
        "offset": letter.offset,
        "key": (letter.key or b"").decode(errors="replace"),
        "consumer_group": letter.header("x-consumer-group"),
        "original_topic": letter.header("x-original-topic"),
        "headers": {name: value.decode(errors="replace") for name, value in letter.headers},
        "payload": payload,
    }


def _replays(ids: list[str]) -> dict[str, ReplayedDeadLetter]:
    return {record.letter_id: record for record in ReplayedDeadLetter.objects.filter(letter_id__in=ids)}


def dead_letter_list(*, topic: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The dead letters of one of the service's DLQ topics, or of every one, oldest first."""
    topics = [topic] if topic else dead_letter_topics()
    letters: list[DeadLetter] = []
    try:
        for name in topics:
            letters += list_dead_letters(
                name, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, limit=limit
            )
    except KafkaException as error:
        raise BrokerUnavailable(str(error)) from error
    letters = letters[:limit]
    replays = _replays([letter.id for letter in letters])
    return [letter_summary(letter, replays.get(letter.id)) for letter in letters]


def dead_letter_get(letter_id: str) -> DeadLetter | None:
    """The letter `letter_id` names, if it is in one of the service's dead-letter topics."""
    try:
        topic, _partition, _offset = parse_id(letter_id)
    except ValueError:
        return None
    if topic not in dead_letter_topics():
        return None
    try:
        return get_dead_letter(letter_id, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    except KafkaException as error:
        raise BrokerUnavailable(str(error)) from error


def replay_record(letter_id: str) -> ReplayedDeadLetter | None:
    return ReplayedDeadLetter.objects.filter(letter_id=letter_id).first()


@transaction.atomic
def dead_letter_replay(*, letter: DeadLetter, replayed_by: str = "") -> ReplayedDeadLetter:
    """Writes `letter` back to its topic, once: a second call raises AlreadyReplayed.

    The record is inserted first (a concurrent replay of the same letter waits on
    its key, then finds it) and commits only once the broker acknowledged the
    message; a failed produce rolls it back, so the letter can be replayed again."""
    record, created = ReplayedDeadLetter.objects.get_or_create(
        letter_id=letter.id, defaults={"replayed_to": "", "replayed_by": replayed_by}
    )
    if not created:
        raise AlreadyReplayed(record)
    try:
        record.replayed_to = replay_dead_letter(letter, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    except (KafkaException, RuntimeError) as error:
        raise BrokerUnavailable(str(error)) from error
    record.save(update_fields=["replayed_to"])
    record.refresh_from_db(fields=["replayed_at"])
    return record


def dead_letter_purge(*, topic: str) -> int:
    """Deletes every message of one of the service's dead-letter topics; how many."""
    from ._dlq import purge_dead_letters

    try:
        return purge_dead_letters(topic, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    except KafkaException as error:
        raise BrokerUnavailable(str(error)) from error


# Processes ------------------------------------------------------------------------------------

# A heartbeat older than this: the process's loop stopped turning (the probes' own limit).
HEARTBEAT_STALE_S = 120.0


def declared_processes() -> list[str]:
    """The service's processes other than web, from its Procfile (`kind: command` lines).
    A relay that runs as a thread of the consumer (`consume_events --with-relay`) is listed
    after it: it has its own heartbeat."""
    procfile = settings.BASE_DIR / "Procfile" if getattr(settings, "BASE_DIR", None) else None
    if procfile is None or not procfile.exists():
        return []
    return list(_procfile_kinds(str(procfile)))


@functools.cache
def _procfile_kinds(path: str) -> tuple[str, ...]:
    # Read once per process: the console polls the health report every few seconds.
    kinds = []
    for line in Path(path).read_text().splitlines():
        kind, sep, command = line.partition(":")
        if sep and not line.startswith("#") and kind.strip() and kind.strip() != "web":
            kinds.append(kind.strip())
            if kind.strip() == "consumer" and "--with-relay" in command.split():
                kinds.append("relay")
    return tuple(dict.fromkeys(kinds))


def _group_members() -> dict[str, dict[str, Any]]:
    """The broker's view of each of the service's consumer groups: state and member count."""
    from confluent_kafka.admin import AdminClient

    groups = [group.group for group in consumer_groups()]
    if not groups:
        return {}
    admin = AdminClient(kafka_client_config(settings.KAFKA_BOOTSTRAP_SERVERS, log_level=0))
    described: dict[str, dict[str, Any]] = {}
    try:
        for group, future in admin.describe_consumer_groups(groups, request_timeout=BROKER_TIMEOUT_S).items():
            result = future.result(timeout=BROKER_TIMEOUT_S)
            described[group] = {
                "group": group,
                "state": str(result.state.name).lower(),
                "members": len(result.members),
            }
    except KafkaException as error:
        raise BrokerUnavailable(str(error)) from error
    return described


WORKER_PING_TIMEOUT_S = 1.0
_control_app: Any = None


def _workers_on_queue() -> int | None:
    """How many Celery workers consume the service's queue, by a broadcast on its broker
    (every worker answers from wherever it runs); None when the broker cannot be asked."""
    global _control_app
    from celery import Celery

    broker = getattr(settings, "CELERY_BROKER_URL", None)
    if not broker:
        return None
    if _control_app is None:
        _control_app = Celery(f"{_service()}-ops", broker=broker, set_as_current=False)
    queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", _service())
    try:
        # The raw replies, one per worker: workers on several hosts may share a node name.
        replies = _control_app.control.broadcast("active_queues", reply=True, timeout=WORKER_PING_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - the broker is unreachable: the report says so
        return None
    return sum(
        1
        for reply in replies or []
        for queues in reply.values()
        if any(isinstance(q, dict) and q.get("name") == queue for q in queues or [])
    )


def processes_status() -> dict[str, Any]:
    """Each process of the service as this web process sees it: its heartbeat (when the
    heartbeat folder is shared, as in the devstack); for the consumer, the broker's view
    of its groups (members, state), for the worker, how many Celery workers answer on
    the service's queue: both hold wherever those processes run."""
    from comptoir._health import Heartbeat

    service = _service()
    processes = []
    for kind in declared_processes():
        age = Heartbeat(service, kind).age_s()
        entry: dict[str, Any] = {
            "process": kind,
            "heartbeat_age_s": round(age, 1) if age is not None else None,
            "status": "unknown" if age is None else ("ok" if age <= HEARTBEAT_STALE_S else "stale"),
        }
        if kind == "worker":
            workers = _workers_on_queue()
            entry["workers"] = workers
            if workers is not None:
                entry["status"] = "ok" if workers else "down"
        if kind == "consumer":
            groups = list(_group_members().values())
            entry["groups"] = groups
            if groups:
                entry["status"] = "ok" if all(group["members"] > 0 for group in groups) else "down"
        processes.append(entry)
    return {"service": service, "processes": processes}
