"""The saga's metrics (order_service's own; the chassis gives every service the rest).

- `comptoir_saga_finished_total{service,mode,status,reason}` and
  `comptoir_saga_duration_seconds{service,mode,status}`, through `saga_finished()`;
- `comptoir_saga_pending{service,mode}` and
  `comptoir_saga_oldest_pending_age_seconds{service,mode}`, read from the database
  when /metrics is scraped (`SagaBacklogCollector`, the "saga stuck" alert).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger("comptoir.metrics")

SAGA_FINISHED = Counter(
    "comptoir_saga_finished_total",
    "Sagas that reached a final state, by mode (orchestration, choreography), status and reason.",
    ["service", "mode", "status", "reason"],
)
SAGA_DURATION = Histogram(
    "comptoir_saga_duration_seconds",
    "Time from a saga's start to its final state.",
    ["service", "mode", "status"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


def _service() -> str:
    return str(settings.COMPTOIR["SERVICE_NAME"])


def saga_finished(*, mode: str, status: str, reason: str = "", duration_s: float | None = None) -> None:
    """Counts one saga reaching a final state (call it once, after the commit).

    `mode`: "orchestration" or "choreography"; `status`: e.g. "CONFIRMED" or
    "CANCELLED"; `reason`: the cancel reason code ("" when confirmed);
    `duration_s`: from the order's creation, when known.
    """
    service = _service()
    SAGA_FINISHED.labels(service, mode, status, reason or "none").inc()
    if duration_s is not None:
        SAGA_DURATION.labels(service, mode, status).observe(max(0.0, duration_s))


SagaBacklog = Callable[[], Iterable[tuple[str, int, float]]]


class SagaBacklogCollector(Collector):
    """`backlog() -> [(mode, pending_count, oldest_pending_age_s), ...]`, read at scrape time."""

    def __init__(self, backlog: SagaBacklog) -> None:
        self.backlog = backlog

    def __eq__(self, other: object) -> bool:
        # Registered once per backlog, however often the app is made ready.
        return isinstance(other, SagaBacklogCollector) and other.backlog == self.backlog

    def __hash__(self) -> int:
        return hash(self.backlog)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        service = _service()
        pending = GaugeMetricFamily(
            "comptoir_saga_pending", "Sagas not yet in a final state.", labels=["service", "mode"]
        )
        oldest = GaugeMetricFamily(
            "comptoir_saga_oldest_pending_age_seconds",
            "Age of the oldest saga not yet in a final state (0 when none).",
            labels=["service", "mode"],
        )
        try:
            rows = list(self.backlog())
        except Exception as error:  # noqa: BLE001 - a scrape must not fail on a database hiccup
            logger.warning("metrics: saga backlog unavailable: %s", error)
            rows = []
        for mode, count, age in rows:
            pending.add_metric([service, mode], count)
            oldest.add_metric([service, mode], age)
        yield pending
        yield oldest
