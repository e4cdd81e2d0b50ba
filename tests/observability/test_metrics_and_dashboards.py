"""Every metric family exists in the local Prometheus after a short load, with sane
values, and every Grafana panel's PromQL runs and reads metrics that exist."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO_ROOT, prometheus
from platform_client import wait_for

DASHBOARDS = sorted((REPO_ROOT / "deploy" / "observability" / "grafana" / "dashboards").glob("*.json"))
FAMILIES = [
    "comptoir_http_requests_total",
    "comptoir_http_request_duration_seconds_bucket",
    "comptoir_db_queries_total",
    "comptoir_celery_tasks_total",
    "comptoir_celery_task_duration_seconds_bucket",
    "comptoir_outbox_pending_messages",
    "comptoir_outbox_oldest_pending_age_seconds",
    "comptoir_outbox_quarantined",
    "comptoir_outbox_relayed_total",
    "comptoir_outbox_relay_failures_total",
    "comptoir_consumer_messages_total",
    "comptoir_consumer_lag",
    "comptoir_consumer_retries_total",
    "comptoir_consumer_dead_letters_total",
    "comptoir_dlq_messages",
    "gateway_requests_total",
    "gateway_request_duration_seconds_bucket",
    "gateway_circuit_breaker_state",
]
SAGA_FAMILIES = ["comptoir_saga_finished_total", "comptoir_saga_duration_seconds_bucket"]
METRIC = re.compile(r"\b((?:comptoir|gateway)_[a-z0-9_]+|up)\b")


def _exists(name: str) -> bool:
    return bool(prometheus(f'count({{__name__="{name}"}})'))


@pytest.mark.usefixtures("short_load")
def test_every_metric_family_exists_with_sane_values() -> None:
    missing = [name for name in FAMILIES if not _exists(name)]
    assert missing == []
    down = prometheus('up{job!="prometheus"} == 0')
    assert [series["metric"].get("process") for series in down] == []
    # The order was answered by its route template, never by a raw path.
    orders = prometheus('sum(comptoir_http_requests_total{service="order_service", route="api/orders/"})')
    assert float(orders[0]["value"][1]) >= 1
    assert prometheus('comptoir_http_requests_total{route=~".*[0-9]{3,}.*"}') == []
    # Once the relays have run, nothing waits in any outbox and the consumers caught up.
    wait_for(
        lambda: prometheus("max(comptoir_outbox_oldest_pending_age_seconds) == 0") or None,
        timeout_s=60,
        what="every outbox drained",
        interval_s=2.0,
    )
    wait_for(
        lambda: prometheus("sum(comptoir_consumer_lag) == 0") or None,
        timeout_s=60,
        what="every consumer caught up",
        interval_s=2.0,
    )
    succeeded = prometheus('sum(comptoir_celery_tasks_total{outcome="success"})')
    assert float(succeeded[0]["value"][1]) >= 1


@pytest.mark.usefixtures("short_load")
def test_saga_outcomes_are_counted() -> None:
    assert [name for name in SAGA_FAMILIES if not _exists(name)] == []


def test_the_reconciliation_auditor_exports_its_findings() -> None:
    """Celery beat runs the auditor (every 30 s on the devstack): its gauge exists for
    every violation kind, and its last run is recent."""
    series = wait_for(
        lambda: prometheus('comptoir_reconciliation_violations{service="order_service"}') or None,
        timeout_s=120,
        what="a reconciliation run exported by order_service's worker",
        interval_s=2.0,
    )
    assert len({s["metric"]["kind"] for s in series}) == 12
    assert all(float(s["value"][1]) >= 0 for s in series)
    age = prometheus("time() - max(comptoir_reconciliation_last_run_timestamp_seconds)")
    assert float(age[0]["value"][1]) < 300


def _panel_queries() -> list[tuple[str, str, str]]:
    found = []
    for board in DASHBOARDS:
        for panel in json.loads(board.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((board.name, panel["title"], target["expr"]))
    return found


def test_dashboards_are_the_generated_ones() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", DASHBOARDS[0].parent.parent / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.all_dashboards()
    assert sorted(expected) == [board.name for board in DASHBOARDS]
    for board in DASHBOARDS:
        assert json.loads(board.read_text()) == expected[board.name], f"{board.name}: run generate.py"


@pytest.mark.usefixtures("short_load")
@pytest.mark.parametrize(("board", "title", "expr"), _panel_queries())
def test_every_panel_query_runs_over_existing_metrics(board: str, title: str, expr: str) -> None:
    prometheus(expr)  # valid PromQL: Prometheus answers "success"
    names = set(METRIC.findall(expr)) - {"up"}
    base = {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
    missing = [
        name
        for name in sorted(names)
        if not _exists(name) and not any(_exists(f"{b}_bucket") for b in base if name.startswith(b))
    ]
    assert missing == [], f"{board} / {title}"
