"""`manage.py outbox_relay`: publishes the service's outbox to Kafka (one process per service)."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from comptoir.events import OutboxRelay


class Command(BaseCommand):
    help = "Publish pending outbox rows to Kafka until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-seconds", type=float, default=None, help="stop after this long")

    def handle(self, *args: Any, **options: Any) -> None:
        relay = OutboxRelay()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: relay.stop())
        stats = relay.run(max_seconds=options["max_seconds"])
        self.stdout.write(f"relayed {stats.sent} event(s) in {stats.batches} batch(es)")
