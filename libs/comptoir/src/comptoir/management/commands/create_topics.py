"""`manage.py create_topics`: creates the Kafka topics the service needs.

Those it declares in `COMPTOIR["KAFKA_TOPICS"]`, and from the event catalogue
the topics of the events it produces and consumes, with the retry and
dead-letter topics of the consumed ones. Run it with an admin principal: the
services' own principals may not create topics.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from comptoir import TopicSpec, ensure_topics
from comptoir.events import event_settings, topic_for
from comptoir.events._contracts import event_types_consumed_by, event_types_produced_by
from comptoir.events._topics import topic_specs


def service_topics() -> list[TopicSpec]:
    service = settings.COMPTOIR["SERVICE_NAME"]
    config = event_settings()
    specs: dict[str, TopicSpec] = {spec.name: spec for spec in settings.COMPTOIR["KAFKA_TOPICS"]}
    produced = [topic_for(event_type) for event_type in event_types_produced_by(service)]
    consumed = [topic_for(event_type) for event_type in event_types_consumed_by(service)]
    for spec in [
        *topic_specs(produced, config, with_failure_topics=False),
        *topic_specs(consumed, config, with_failure_topics=True),
    ]:
        specs.setdefault(spec.name, spec)
    return sorted(specs.values(), key=lambda spec: spec.name)


class Command(BaseCommand):
    help = "Create the service's Kafka topics: declared, produced and consumed (with retry/DLQ). Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        topics = service_topics()
        created = ensure_topics(topics, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
        self.stdout.write(
            f"created {len(created)} topic(s): {', '.join(created)}"
            if created
            else f"all {len(topics)} topic(s) exist"
        )
