"""`manage.py consume_events [--with-relay]`: runs the service's event handlers (one process
per purpose); with `--with-relay`, the service's outbox relay too, as a thread."""

from __future__ import annotations

import os
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import autodiscover_modules

from comptoir._health import Heartbeat
from comptoir.events import DEFAULT_PURPOSE, EventConsumer, OutboxRelay
from comptoir.events._relay import RelayThread
from comptoir.metrics import serve_metrics


class Command(BaseCommand):
    help = (
        "Consume the events this service handles (handlers from <app>/handlers.py) until SIGTERM; "
        "with --with-relay, publish the service's outbox from the same process."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--purpose", default=DEFAULT_PURPOSE, help="which handlers (consumer group suffix)"
        )
        parser.add_argument("--group-id", default=None, help="override the group id <service>.<purpose>")
        parser.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
        parser.add_argument(
            "--with-relay",
            action="store_true",
            help="also run the outbox relay, as a thread of this process (instead of `outbox_relay`)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=int(os.environ.get("COMPTOIR_METRICS_PORT") or 0) or None,
            help="serve Prometheus metrics on this port (default: $COMPTOIR_METRICS_PORT, else none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["metrics_port"]:
            serve_metrics(options["metrics_port"])  # the relay thread's metrics too
        autodiscover_modules("handlers")
        service = settings.COMPTOIR["SERVICE_NAME"]
        consumer = EventConsumer(purpose=options["purpose"], group_id=options["group_id"])
        relay: RelayThread | None = None
        if options["with_relay"]:
            # Its own heartbeat (`python -m comptoir.probe live relay`). If its loop ends,
            # the consumer stops too and the process exits non-zero: never half alive.
            relay = RelayThread(
                OutboxRelay(), heartbeat=Heartbeat(service, "relay").beat, on_exit=consumer.stop
            )

        def stop(*_: object) -> None:
            consumer.stop()
            if relay is not None:
                relay.request_stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)
        # `until` runs after every poll, broker down or not: the loop's heartbeat, which the
        # liveness probe reads (`python -m comptoir.probe live consumer`).
        heartbeat = Heartbeat(service, "consumer")
        if relay is not None:
            relay.start()
        try:
            # Its totals are logged by the consumer as it leaves its group (an ECS record).
            consumer.run(max_seconds=options["max_seconds"], until=heartbeat.keep_going)
        finally:
            if relay is not None:
                relay.stop()  # flushes its producer; a batch in progress commits or rolls back
        if relay is not None and relay.error is not None:
            raise CommandError(f"the outbox relay failed: {relay.error!r}")
