"""Writes the provisioned Grafana dashboards (JSON) from one description.

    python deploy/observability/grafana/generate.py     # rewrites dashboards/*.json

Every panel's query is PromQL over metrics the chassis and the gateway export;
tests/observability/test_metrics_and_dashboards.py runs each one against the local Prometheus.
"""

# ruff: noqa: E501 - PromQL reads best on one line

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SERVICES = ["user_service", "product_service", "order_service", "payment_service", "email_service"]


def panel(
    title: str, exprs: dict[str, str], *, unit: str = "short", kind: str = "timeseries"
) -> dict[str, Any]:
    return {
        "title": title,
        "type": kind,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for n, (legend, expr) in enumerate(exprs.items())
        ],
    }


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], tags: list[str]) -> dict[str, Any]:
    laid_out = []
    for n, item in enumerate(panels):
        laid_out.append(
            {**item, "id": n + 1, "gridPos": {"h": 8, "w": 12, "x": 12 * (n % 2), "y": 8 * (n // 2)}}
        )
    return {
        "uid": uid,
        "title": title,
        "tags": ["comptoir", *tags],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": laid_out,
    }


def overview() -> dict[str, Any]:
    return dashboard(
        "comptoir-overview",
        "Comptoir / Platform overview",
        [
            panel("Processes up", {"{{process}}": 'up{job!="prometheus"}'}, kind="stat"),
            panel(
                "Gateway requests by status",
                {"{{status}}": "sum by (status) (rate(gateway_requests_total[5m]))"},
                unit="reqps",
            ),
            panel(
                "Requests per service",
                {"{{service}}": "sum by (service) (rate(comptoir_http_requests_total[5m]))"},
                unit="reqps",
            ),
            panel(
                "5xx ratio per service",
                {
                    "{{service}}": 'sum by (service) (rate(comptoir_http_requests_total{status=~"5.."}[5m]))'
                    " / sum by (service) (rate(comptoir_http_requests_total[5m]))"
                },
                unit="percentunit",
            ),
            panel(
                "p99 latency per service",
                {
                    "{{service}}": "histogram_quantile(0.99, sum by (service, le) "
                    "(rate(comptoir_http_request_duration_seconds_bucket[5m])))"
                },
                unit="s",
            ),
            panel(
                "Gateway p99 latency per route",
                {
                    "{{route}}": "histogram_quantile(0.99, sum by (route, le) (rate(gateway_request_duration_seconds_bucket[5m])))"
                },
                unit="s",
            ),
            panel(
                "Circuit breakers (0 closed, 1 half-open, 2 open)",
                {"{{upstream}}": "max by (upstream) (gateway_circuit_breaker_state)"},
            ),
            panel(
                "Oldest unpublished event per service",
                {"{{service}}": "max by (service) (comptoir_outbox_oldest_pending_age_seconds)"},
                unit="s",
            ),
            panel(
                "Sagas finished (1h)",
                {"{{mode}} {{status}}": "sum by (mode, status) (increase(comptoir_saga_finished_total[1h]))"},
            ),
            panel(
                "Consumer lag per group",
                {"{{group}}": "sum by (group) (comptoir_consumer_lag)"},
            ),
        ],
        ["overview"],
    )


def service_dashboard(service: str) -> dict[str, Any]:
    s = f'service="{service}"'
    return dashboard(
        f"comptoir-{service.replace('_', '-')}",
        f"Comptoir / {service}",
        [
            panel(
                "Requests by route and status",
                {
                    "{{method}} {{route}} {{status}}": f"sum by (method, route, status) (rate(comptoir_http_requests_total{{{s}}}[5m]))"
                },
                unit="reqps",
            ),
            panel(
                "Latency by route (p50, p99)",
                {
                    "p50 {{route}}": "histogram_quantile(0.5, sum by (route, le) "
                    f"(rate(comptoir_http_request_duration_seconds_bucket{{{s}}}[5m])))",
                    "p99 {{route}}": "histogram_quantile(0.99, sum by (route, le) "
                    f"(rate(comptoir_http_request_duration_seconds_bucket{{{s}}}[5m])))",
                },
                unit="s",
            ),
            panel(
                "SQL statements",
                {"{{statement}}": f"sum by (statement) (rate(comptoir_db_queries_total{{{s}}}[5m]))"},
                unit="ops",
            ),
            panel(
                "Errors (4xx, 5xx)",
                {
                    "4xx": f'sum(rate(comptoir_http_requests_total{{{s}, status=~"4.."}}[5m]))',
                    "5xx": f'sum(rate(comptoir_http_requests_total{{{s}, status=~"5.."}}[5m]))',
                },
                unit="reqps",
            ),
            panel(
                "Celery tasks by outcome",
                {
                    "{{task}} {{outcome}}": f"sum by (task, outcome) (rate(comptoir_celery_tasks_total{{{s}}}[5m]))"
                },
                unit="ops",
            ),
            panel(
                "Celery task p95 duration",
                {
                    "{{task}}": "histogram_quantile(0.95, sum by (task, le) "
                    f"(rate(comptoir_celery_task_duration_seconds_bucket{{{s}}}[5m])))"
                },
                unit="s",
            ),
            panel(
                "Outbox",
                {
                    "pending": f"max(comptoir_outbox_pending_messages{{{s}}})",
                    "oldest age (s)": f"max(comptoir_outbox_oldest_pending_age_seconds{{{s}}})",
                },
            ),
            panel(
                "Consumer lag",
                {"{{group}} {{topic}}": f"sum by (group, topic) (comptoir_consumer_lag{{{s}}})"},
            ),
            panel("Up", {"{{process}}": f"up{{{s}}}"}, kind="stat"),
        ],
        ["service", service],
    )


def messaging() -> dict[str, Any]:
    return dashboard(
        "comptoir-messaging",
        "Comptoir / Messaging (outbox, Kafka, retries, DLQ)",
        [
            panel(
                "Outbox pending rows", {"{{service}}": "max by (service) (comptoir_outbox_pending_messages)"}
            ),
            panel(
                "Oldest unpublished event",
                {"{{service}}": "max by (service) (comptoir_outbox_oldest_pending_age_seconds)"},
                unit="s",
            ),
            panel(
                "Relayed events by topic",
                {"{{topic}}": "sum by (topic) (rate(comptoir_outbox_relayed_total[5m]))"},
                unit="ops",
            ),
            panel(
                "Relay failures",
                {"{{service}}": "sum by (service) (rate(comptoir_outbox_relay_failures_total[5m]))"},
                unit="ops",
            ),
            panel(
                "Consumed messages by outcome",
                {
                    "{{group}} {{outcome}}": "sum by (group, outcome) (rate(comptoir_consumer_messages_total[5m]))"
                },
                unit="ops",
            ),
            panel(
                "Consumer lag by partition",
                {
                    "{{group}} {{topic}}[{{partition}}]": "max by (group, topic, partition) (comptoir_consumer_lag)"
                },
            ),
            panel(
                "Retries",
                {
                    "{{group}} {{topic}}": "sum by (group, topic) (increase(comptoir_consumer_retries_total[15m]))"
                },
            ),
            panel(
                "Dead-lettered",
                {
                    "{{group}} {{topic}}": "sum by (group, topic) (increase(comptoir_consumer_dead_letters_total[1h]))"
                },
            ),
            panel(
                "DLQ size",
                {
                    "{{service}}.{{topic}}.dlq ({{group}})": "max by (service, group, topic) (comptoir_dlq_messages)"
                },
                kind="stat",
            ),
        ],
        ["messaging"],
    )


def saga() -> dict[str, Any]:
    return dashboard(
        "comptoir-saga",
        "Comptoir / Order saga",
        [
            panel(
                "Sagas finished by mode and status",
                {"{{mode}} {{status}}": "sum by (mode, status) (rate(comptoir_saga_finished_total[5m]))"},
                unit="ops",
            ),
            panel(
                "Cancellations by reason (1h)",
                {
                    "{{mode}} {{reason}}": 'sum by (mode, reason) (increase(comptoir_saga_finished_total{status="CANCELLED"}[1h]))'
                },
            ),
            panel(
                "Share cancelled",
                {
                    "{{mode}}": 'sum by (mode) (rate(comptoir_saga_finished_total{status="CANCELLED"}[15m]))'
                    " / sum by (mode) (rate(comptoir_saga_finished_total[15m]))"
                },
                unit="percentunit",
            ),
            panel(
                "Saga duration p50 / p95",
                {
                    "p50 {{mode}}": "histogram_quantile(0.5, sum by (mode, le) (rate(comptoir_saga_duration_seconds_bucket[15m])))",
                    "p95 {{mode}}": "histogram_quantile(0.95, sum by (mode, le) (rate(comptoir_saga_duration_seconds_bucket[15m])))",
                },
                unit="s",
            ),
            panel(
                "Saga steps (Celery tasks) by outcome",
                {
                    "{{task}} {{outcome}}": 'sum by (task, outcome) (rate(comptoir_celery_tasks_total{service="order_service"}[5m]))'
                },
                unit="ops",
            ),
            panel(
                "Reconciliation violations by kind (last run)",
                {"{{kind}}": "max by (kind) (comptoir_reconciliation_violations)"},
            ),
            panel(
                "Time since the last reconciliation run",
                {
                    "{{service}}": "time() - max by (service) (comptoir_reconciliation_last_run_timestamp_seconds)"
                },
                unit="s",
                kind="stat",
            ),
            panel(
                "Order events consumed",
                {
                    "{{group}} {{outcome}}": 'sum by (group, outcome) (rate(comptoir_consumer_messages_total{topic=~".*order.*"}[5m]))'
                },
                unit="ops",
            ),
        ],
        ["saga"],
    )


def all_dashboards() -> dict[str, dict[str, Any]]:
    boards = {"overview.json": overview(), "messaging.json": messaging(), "saga.json": saga()}
    for service in SERVICES:
        boards[f"service-{service.replace('_', '-')}.json"] = service_dashboard(service)
    return boards


def main() -> None:
    out = HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for name, board in all_dashboards().items():
        (out / name).write_text(json.dumps(board, indent=2) + "\n")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
