"""The saga's metrics, order_service's own: outcomes counted, backlog read at scrape time."""

from __future__ import annotations

from comptoir import _metrics, metrics
from orders import saga_metrics
from orders.saga_metrics import SagaBacklogCollector


def test_saga_outcomes_and_backlog_are_exported(db: None) -> None:
    before = metrics.render()[0].decode()
    saga_metrics.saga_finished(
        mode="orchestration", status="CANCELLED", reason="insufficient_funds", duration_s=1.5
    )
    saga_metrics.saga_finished(mode="orchestration", status="CONFIRMED", duration_s=0.5)
    collector = SagaBacklogCollector(lambda: [("choreography", 2, 42.0)])
    metrics.register_scrape_collector(collector)
    try:
        body, _ = metrics.render()
    finally:
        _metrics._scrape_collectors.remove(collector)
    text = body.decode()
    for reason, status in (("insufficient_funds", "CANCELLED"), ("none", "CONFIRMED")):
        assert _count(text, reason, status) == _count(before, reason, status) + 1
    assert (
        'comptoir_saga_duration_seconds_count{mode="orchestration",service="order_service",status="CONFIRMED"}'
        in text
    )
    assert 'comptoir_saga_pending{mode="choreography",service="order_service"} 2.0' in text
    assert (
        'comptoir_saga_oldest_pending_age_seconds{mode="choreography",service="order_service"} 42.0' in text
    )


def test_a_backlog_that_fails_leaves_the_scrape_whole(db: None) -> None:
    def broken() -> list[tuple[str, int, float]]:
        raise RuntimeError("database gone")

    collector = SagaBacklogCollector(broken)
    metrics.register_scrape_collector(collector)
    try:
        text = metrics.render()[0].decode()
    finally:
        _metrics._scrape_collectors.remove(collector)
    assert "comptoir_outbox_pending_messages" in text
    assert 'comptoir_saga_pending{mode="choreography"' not in text


def _count(text: str, reason: str, status: str) -> float:
    prefix = (
        f'comptoir_saga_finished_total{{mode="orchestration",reason="{reason}",'
        f'service="order_service",status="{status}"}} '
    )
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0
