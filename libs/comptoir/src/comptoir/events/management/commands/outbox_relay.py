"""`manage.py outbox_relay`: publishes the service's outbox to Kafka (one process per service)."""

from __future__ import annotations

import os
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from comptoir._health import Heartbeat
from comptoir.events import OutboxRelay
from comptoir.metrics import serve_metrics


class Command(BaseCommand):
    help = "Publish pending outbox rows to Kafka until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
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
        relay = OutboxRelay()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: relay.stop())
        # The heartbeat file is the liveness probe's (`python -m comptoir.probe live relay`).
        heartbeat = Heartbeat(settings.COMPTOIR["SERVICE_NAME"], "relay")
        # Its totals are logged by the relay as it stops (an ECS record, like every line).
        relay.run(max_seconds=options["max_seconds"], heartbeat=heartbeat.beat)
