"""Prometheus metrics, served by `gateway.serve` on a port of their own
(`COMPTOIR_METRICS_PORT`), never on the public one. With several worker
processes, `gateway.serve` points `PROMETHEUS_MULTIPROC_DIR` at a shared folder
and the metrics server aggregates them."""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
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


def registry() -> CollectorRegistry:
    """Every worker's metrics (through `PROMETHEUS_MULTIPROC_DIR`), or this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
        return aggregate
    return REGISTRY
