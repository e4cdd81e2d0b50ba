"""Prometheus metrics. With several worker processes, `gateway.serve` points
`PROMETHEUS_MULTIPROC_DIR` at a shared folder and `/metrics` aggregates them."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests answered by the gateway, by route prefix, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from request to the end of the response, by route prefix.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Transport failures talking to an upstream (refused, reset, timeout) and breaker refusals.",
    ["upstream", "kind"],
)
BREAKER_STATE = Gauge(
    "gateway_circuit_breaker_state",
    "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
    multiprocess_mode="max",
)
RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused with 429.", ["budget"])
RATE_LIMIT_ERRORS = Counter(
    "gateway_rate_limit_errors_total", "Rate limit checks skipped because Redis failed (fail open)."
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
