"""What earlier runs leave behind never slows the sink's start, and its store keeps its bounds.

A benchmark left 284 MB of spans in the older sink's file, which read it whole for
every query, readiness included: `make up` then gave up after 30 s. Here a store
is filled well past its bounds (written with the sink's own `Store`, which is
quick), spans arrive through real OTLP/HTTP exports on top, and the sink must
be ready, answer at once and shrink the store back within its bounds.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from devstack.otlp_sink import Bounds, SpanRow, Store

from .conftest import REPO_ROOT, Sink, SinkFactory, export_request, span, span_id_of, trace_id_of, wait_for

MiB = 2**20
S = 1_000_000_000
# `make up` waits 30 s for the trace backend; a sink must be ready well within that.
READY_WITHIN_S = 5.0
ANSWER_WITHIN_S = 0.5
SERVICES = ("api_gateway", "order_service", "payment_service", "product_service")
DETAIL = json.dumps(
    {
        "attributes": {
            "http.method": "POST",
            "http.route": "/api/orders/",
            "http.status_code": 201,
            "db.system": "postgresql",
            "db.statement": "SELECT id, status, total FROM orders_order WHERE id = %s FOR UPDATE",
            "messaging.destination.name": "orders.order-placed",
            "celery.task_name": "order_service.tasks.advance_saga",
            "user_agent.original": "python-httpx/0.28.1 " + "x" * 160,
        },
        "scope": "opentelemetry.instrumentation.django",
        "status": "OK",
    },
    separators=(",", ":"),
)


def fill_store(path: Path, *, traces: int, spans_per_trace: int, newest_start_ns: int, prefix: int) -> None:
    """Writes traces straight into a store file, one second apart, the last starting at `newest_start_ns`."""
    store = Store(path, Bounds(max_age_s=10**9, max_traces=10**9, max_bytes=2**50))
    try:
        for first in range(0, traces, 50):
            rows = []
            for n in range(first, min(first + 50, traces)):
                start = newest_start_ns - (traces - 1 - n) * S
                trace_id = trace_id_of(n, prefix)
                for s in range(spans_per_trace):
                    begin = start + s * 1000
                    rows.append(
                        SpanRow(
                            trace_id=trace_id,
                            span_id=span_id_of(s),
                            parent_id=span_id_of(0) if s else "",
                            service=SERVICES[s % len(SERVICES)],
                            operation=f"operation {s % 25}",
                            kind="server",
                            start_ns=begin,
                            end_ns=begin + 2_000_000,
                            duration_us=2000,
                            error=0,
                            detail=DETAIL,
                        )
                    )
            store.add(rows)
    finally:
        store.close()


def store_bytes(path: Path) -> int:
    """The store's size on disk: the database and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def timed_get(sink: Sink, path: str, **params: str | int) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = sink.get(path, **params)
    return response, time.monotonic() - began


def order_export(trace_id: str, start_ns: int, spans: int) -> bytes:
    """An order's trace as the platform exports it: a gateway request and the services' spans under it."""
    gateway = span(trace_id, span_id_of(0), "POST /api/orders/", start_ns=start_ns, duration_ns=80_000_000)
    gateway.kind = Span.SPAN_KIND_SERVER
    children = [
        span(
            trace_id,
            span_id_of(n),
            f"step {n % 30}",
            parent_id=span_id_of(0),
            start_ns=start_ns + n * 100_000,
            duration_ns=1_000_000,
            attrs={"db.statement": "UPDATE products_stock SET reserved = reserved + %s WHERE id = %s"},
        )
        for n in range(1, spans)
    ]
    request = export_request({"api_gateway": [gateway], "order_service": children})
    return bytes(request.SerializeToString())


def test_an_over_full_store_starts_at_once_answers_at_once_and_shrinks_to_its_bounds(
    start_sink: SinkFactory, tmp_path: Path
) -> None:
    store = tmp_path / "spans.sqlite"
    now = time.time_ns()
    # An earlier run's traces: 600 older than the age bound, 2400 recent ones (100 spans each).
    began = time.monotonic()
    fill_store(store, traces=600, spans_per_trace=100, newest_start_ns=now - 3 * 3600 * S, prefix=0xD)
    fill_store(store, traces=2400, spans_per_trace=100, newest_start_ns=now - 60 * S, prefix=0xE)
    left_behind = store_bytes(store)
    print(f"\nleft behind: {left_behind / MiB:.0f} MiB, 300000 spans, in {time.monotonic() - began:.1f} s")
    assert left_behind > 150 * MiB
    bounds = Bounds(max_age_s=3600, max_traces=1000, max_bytes=40 * MiB)

    sink = start_sink(
        *("--max-age-s", "3600", "--max-traces", "1000", "--max-bytes", str(bounds.max_bytes)),
        *("--prune-interval-s", "1"),
        store=store,
    )

    print(f"ready after {sink.ready_after_s:.2f} s")
    assert sink.ready_after_s < READY_WITHIN_S
    # While the first pruning runs: a trace by id and a search answer at once.
    newest = trace_id_of(2399, 0xE)
    latencies = []
    for _ in range(20):
        response, took = timed_get(sink, f"/api/traces/{newest}")
        assert response.status_code == 200
        assert len(response.json()["data"][0]["spans"]) == 100
        latencies.append(took)
    response, search_took = timed_get(sink, "/api/traces", service="payment_service", limit=20)
    assert response.status_code == 200
    assert [trace["traceID"] for trace in response.json()["data"]] == [
        trace_id_of(n, 0xE) for n in range(2399, 2379, -1)
    ]
    print(f"by id: median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    print(f"search: {search_took * 1000:.1f} ms")
    assert max(latencies) < ANSWER_WITHIN_S
    assert search_took < ANSWER_WITHIN_S

    # A benchmark's orders arrive meanwhile: 100 traces of 250 spans through OTLP/HTTP.
    began = time.monotonic()
    posted = [trace_id_of(n, 0xF) for n in range(100)]
    for n, trace_id in enumerate(posted):
        response = sink.post(order_export(trace_id, time.time_ns() + n * 1000, spans=250))
        assert response.status_code == 200, response.text
    print(f"posted 25000 spans in {time.monotonic() - began:.1f} s")

    def within_bounds() -> bool:
        stats = sink.stats()
        return bool(stats["traces"] <= bounds.max_traces and store_bytes(store) <= bounds.max_bytes)

    began = time.monotonic()
    wait_for(within_bounds, what="the store back within its bounds", timeout_s=45)
    stats = sink.stats()
    print(
        f"within bounds {time.monotonic() - began:.1f} s later: {stats['traces']} traces, "
        f"{stats['spans']} spans, {store_bytes(store) / MiB:.1f} MiB on disk"
    )
    # The newest traces stay, the ones past the age bound are gone.
    for trace_id in posted:
        response = sink.get(f"/api/traces/{trace_id}")
        assert response.status_code == 200
        assert len(response.json()["data"][0]["spans"]) == 250
    assert sink.get(f"/api/traces/{trace_id_of(599, 0xD)}").status_code == 404
    assert sink.get(f"/api/traces/{newest}").status_code == 200
    assert [t["traceID"] for t in sink.get("/api/traces", service="api_gateway", limit=3).json()["data"]] == [
        posted[99],
        posted[98],
        posted[97],
    ]

    # The next start reads the bounded store it left: ready at once, traces kept.
    assert sink.stop() == 0
    again = start_sink("--max-traces", "1000", "--max-bytes", str(bounds.max_bytes), store=store)
    print(f"restarted: ready after {again.ready_after_s:.2f} s")
    assert again.ready_after_s < READY_WITHIN_S
    assert len(again.get(f"/api/traces/{posted[0]}").json()["data"][0]["spans"]) == 250


def test_the_oldest_traces_beyond_the_count_bound_go(start_sink: SinkFactory, tmp_path: Path) -> None:
    store = tmp_path / "spans.sqlite"
    fill_store(store, traces=1500, spans_per_trace=1, newest_start_ns=time.time_ns(), prefix=0xE)

    sink = start_sink("--max-traces", "1000", "--prune-interval-s", "1", store=store)

    wait_for(lambda: sink.stats()["traces"] == 1000, what="1000 traces left")
    assert sink.get(f"/api/traces/{trace_id_of(499, 0xE)}").status_code == 404
    assert sink.get(f"/api/traces/{trace_id_of(500, 0xE)}").status_code == 200
    assert sink.stats()["traces"] == 1000


def test_the_older_sinks_json_lines_file_is_replaced_without_being_read(
    start_sink: SinkFactory, tmp_path: Path
) -> None:
    store = tmp_path / "spans.jsonl"
    line = json.dumps({"traceID": "a" * 32, "spanID": "b" * 16, "operationName": "x", "attributes": DETAIL})
    chunk = ((line + "\n") * (MiB // (len(line) + 1))).encode()
    with store.open("wb") as handle:
        for _ in range(200):
            handle.write(chunk)
    assert store.stat().st_size > 190 * MiB

    sink = start_sink(store=store)

    print(f"\nready after {sink.ready_after_s:.2f} s over a {200} MiB JSON-lines file")
    assert sink.ready_after_s < READY_WITHIN_S
    assert "holds spans in the older JSON-lines format (200 MiB): removed" in sink.log()
    assert {key: sink.stats()[key] for key in ("traces", "spans")} == {"traces": 0, "spans": 0}
    assert store.read_bytes()[:16] == b"SQLite format 3\x00"


def test_a_store_of_another_schema_version_is_replaced(start_sink: SinkFactory, tmp_path: Path) -> None:
    store = tmp_path / "spans.sqlite"
    fill_store(store, traces=3, spans_per_trace=2, newest_start_ns=time.time_ns(), prefix=0xE)
    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()

    sink = start_sink(store=store)

    assert "was written by another version of the sink (schema 99): replaced" in sink.log()
    assert sink.stats()["traces"] == 0


@pytest.mark.parametrize("kind", ["text", "sqlite"])
def test_a_store_path_holding_another_programs_file_is_refused_and_left_alone(
    tmp_path: Path, kind: str
) -> None:
    store = tmp_path / "precious"
    if kind == "text":
        store.write_text("my notes\n")
    else:
        with sqlite3.connect(store) as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
        conn.close()
    before = store.read_bytes()

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.otlp_sink",
            *("--otlp-port", "0", "--query-port", "0"),
            "--store",
            store,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    expected = (
        "a SQLite database of another program" if kind == "sqlite" else "neither a trace store nor empty"
    )
    assert f"otlp sink: cannot open the store: {store} is {expected}; pass another --store" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert store.read_bytes() == before
