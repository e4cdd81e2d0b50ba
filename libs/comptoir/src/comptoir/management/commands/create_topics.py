"""`manage.py create_topics`: creates the Kafka topics the service declares."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from comptoir import ensure_topics


class Command(BaseCommand):
    help = "Create the Kafka topics listed in settings.COMPTOIR['KAFKA_TOPICS'] (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        topics = settings.COMPTOIR["KAFKA_TOPICS"]
        created = ensure_topics(topics, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
        self.stdout.write(
            f"created {len(created)} topic(s): {', '.join(created)}"
            if created
            else f"all {len(topics)} declared topic(s) exist"
        )
