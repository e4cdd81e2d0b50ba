"""`manage.py consume_events`: runs the service's event handlers (one process per purpose)."""

from __future__ import annotations

import os
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils.module_loading import autodiscover_modules

from comptoir._health import Heartbeat
from comptoir.events import DEFAULT_PURPOSE, EventConsumer
from comptoir.metrics import serve_metrics


class Command(BaseCommand):
    help = "Consume the events this service handles (handlers from <app>/handlers.py) until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--purpose", default=DEFAULT_PURPOSE, help="which handlers (consumer group suffix)"
        )
        parser.add_argument("--group-id", default=None, help="override the group id <service>.<purpose>")
        parser.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=int(os.environ.get("COMPTOIR_METRICS_PORT") or 0) or None,
            help="serve Prometheus metrics on this port (default: $COMPTOIR_METRICS_PORT, else none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["metrics_port"]:
            serve_metrics(options["metrics_port"])
        autodiscover_modules("handlers")
        consumer = EventConsumer(purpose=options["purpose"], group_id=options["group_id"])
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: consumer.stop())
        # `until` runs after every poll, broker down or not: the loop's heartbeat, which the
        # liveness probe reads (`python -m comptoir.probe live consumer`).
        heartbeat = Heartbeat(settings.COMPTOIR["SERVICE_NAME"], "consumer")
        # Its totals are logged by the consumer as it leaves its group (an ECS record).
        consumer.run(max_seconds=options["max_seconds"], until=heartbeat.keep_going)
