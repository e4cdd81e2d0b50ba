"""Topic names and their creation.

`<topic>` carries an event type. A consuming service has failure topics of its
own for it: `<service>.<topic>.retry.<n>` holds its messages waiting for their
n-th retry, `<service>.<topic>.dlq` its dead letters. Named after the service,
they are its alone: its Kafka principal may write them (prefix `<service>.`),
no other service's may, so nobody can slip a forged event into another
service's retries. A service's relay creates the topics it produces to, its
consumer the topics it reads with their retry and dead-letter topics, at
start-up (or `create_topics`, with an admin principal). Partitions and retention come from a TopicSpec
in `COMPTOIR["KAFKA_TOPICS"]` when the service declares one, else from
`COMPTOIR_EVENTS` (TOPIC_PARTITIONS, TOPIC_RETENTION_MS, DLQ_RETENTION_MS).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaException
from django.conf import settings

from comptoir import TopicSpec, ensure_topics

from ._config import EventSettings

logger = logging.getLogger("comptoir.events.topics")
# One attempt to reach the broker, then the waits between attempts (doubling).
ATTEMPT_TIMEOUT_S = 5.0
MAX_WAIT_S = 30.0

_RETRY = re.compile(r"^(?P<origin>.+)\.retry\.(?P<n>[0-9]+)$")


def retry_topic(topic: str, attempt: int, service: str) -> str:
    return f"{service}.{topic}.retry.{attempt}"


def dlq_topic(topic: str, service: str) -> str:
    return f"{service}.{topic}.dlq"


def parse_retry_topic(topic: str, service: str) -> tuple[str, int] | None:
    """(origin topic, n) for `service`'s `<service>.<origin>.retry.<n>`, else None."""
    if not topic.startswith(f"{service}."):
        return None
    match = _RETRY.match(topic.removeprefix(f"{service}."))
    return (match["origin"], int(match["n"])) if match else None


def dlq_origin(dlq: str) -> str:
    """The event topic of a dead-letter topic `<service>.<topic>.dlq`."""
    return dlq.removesuffix(".dlq").split(".", 1)[-1]


def _declared() -> dict[str, TopicSpec]:
    return {spec.name: spec for spec in settings.COMPTOIR.get("KAFKA_TOPICS", [])}


def declared_topic_names() -> list[str]:
    """The topics the service lists in `COMPTOIR["KAFKA_TOPICS"]`."""
    return sorted(_declared())


def topic_specs(
    topics: Iterable[str], config: EventSettings, *, with_failure_topics: bool
) -> list[TopicSpec]:
    """The specs for `topics` (and their retry and DLQ topics when asked)."""
    declared = _declared()
    specs: list[TopicSpec] = []
    for topic in sorted(set(topics)):
        main = declared.get(topic) or TopicSpec(
            topic,
            partitions=config.topic_partitions,
            replication_factor=config.topic_replication_factor,
            config={"retention.ms": str(config.topic_retention_ms)},
        )
        specs.append(main)
        if not with_failure_topics:
            continue
        for attempt in range(1, len(config.retry_delays) + 1):
            name = retry_topic(topic, attempt, config.service)
            specs.append(
                declared.get(name)
                or TopicSpec(
                    name,
                    partitions=main.partitions,
                    replication_factor=main.replication_factor,
                    config=main.config,
                )
            )
        name = dlq_topic(topic, config.service)
        specs.append(
            declared.get(name)
            or TopicSpec(
                name,
                partitions=1,
                replication_factor=main.replication_factor,
                config={"retention.ms": str(config.dlq_retention_ms)},
            )
        )
    return specs


def declare_topics(
    topics: Iterable[str], config: EventSettings, *, with_failure_topics: bool, timeout_s: float = 30.0
) -> list[str]:
    """Creates whichever of the topics (and failure topics) are missing; returns those created."""
    return ensure_topics(
        topic_specs(topics, config, with_failure_topics=with_failure_topics),
        bootstrap_servers=config.bootstrap_servers,
        timeout_s=timeout_s,
    )


def declare_topics_when_reachable(
    topics: Iterable[str],
    config: EventSettings,
    *,
    with_failure_topics: bool,
    stop: threading.Event,
    alive: Callable[[], object] | None = None,
    deadline: float | None = None,
) -> bool:
    """`declare_topics`, waiting for the broker when it cannot be reached: a relay or a
    consumer started during a broker outage waits (its liveness beating through
    `alive`, its readiness failing on the broker check) instead of exiting. Tries
    again after 1, 2, 4... seconds (at most MAX_WAIT_S); False when `stop` was set or
    the `deadline` (time.monotonic()) passed first."""
    wanted = list(topics)
    wait = 1.0
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        if alive is not None:
            alive()
        try:
            declare_topics(
                wanted, config, with_failure_topics=with_failure_topics, timeout_s=ATTEMPT_TIMEOUT_S
            )
            return True
        except KafkaException as error:
            logger.warning(
                "waiting for Kafka at %s to declare topics (retry in %.0f s): %s",
                config.bootstrap_servers,
                wait,
                error,
            )
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        stop.wait(wait)
        wait = min(max(wait, 0.5) * 2, MAX_WAIT_S)
    return False
