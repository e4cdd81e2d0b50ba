"""The devstack's own trace backend, for machines where Jaeger could not be built.

It receives OTLP/HTTP (`POST /v1/traces`, protobuf or JSON, gzipped or not, as
the OpenTelemetry exporters send it) and answers the part of Jaeger's HTTP query
API that the tests, the operators and the operations console use, in Jaeger's
JSON shape:

    GET /api/services                        the service names
    GET /api/services/<service>/operations   that service's operation names
    GET /api/operations?service=S            the same, with their span kinds
    GET /api/traces/<trace id>               one trace
    GET /api/traces?service=S&operation=O&start=<µs>&end=<µs>&minDuration=10ms
        &maxDuration=1.5s&tags={"error":"true"}&limit=20
                                             the newest matching traces first
    GET /                                    what the store holds, and its bounds

A benchmark sends hundreds of megabytes of spans, and a store that only grows
and is read whole for every query made the platform's start-up depend on what
earlier runs left behind. So spans go to one SQLite file (WAL: queries never
wait for writes) with an index per query: readiness (`/api/services`) reads a
table of a few hundred rows, a trace by id is one index range. A background
thread keeps the store within its bounds (age, number of traces, bytes),
deleting the oldest traces first in small transactions and giving the freed
pages back to the file system.

    python -m devstack.otlp_sink --otlp-port 4318 --query-port 16686 --store spans.sqlite

The bounds default to $COMPTOIR_TRACES_MAX_AGE_S (3600), $COMPTOIR_TRACES_MAX_TRACES
(50000) and $COMPTOIR_TRACES_MAX_BYTES (256 MiB). Local traces are disposable: a
file the older JSON-lines sink left at the store path, or a store of another
version, is replaced by an empty store instead of being read.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import math
import os
import queue
import re
import signal
import sqlite3
import sys
import threading
import time
import traceback
import urllib.parse
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from google.protobuf.json_format import ParseDict, ParseError  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

DEFAULT_MAX_AGE_S = 3600
DEFAULT_MAX_TRACES = 50_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_PRUNE_INTERVAL_S = 5.0
DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 1500
MAX_BODY_BYTES = 64 * 1024 * 1024

SCHEMA_VERSION = 1
# Marks a SQLite file as this sink's store ("Cmpt"), so that a store path
# pointing at someone else's database is refused rather than replaced.
APPLICATION_ID = 0x436D7074
SQLITE_MAGIC = b"SQLite format 3\x00"

# Pruning works in transactions of at most this many traces and about this many
# spans, so that an export waits for a fraction of a second at most.
PRUNE_BATCH_TRACES = 1000
PRUNE_BATCH_SPANS = 10_000
PRUNE_MAX_BATCHES = 10_000
PRUNE_BUDGET_S = 20.0
# Pruning by size aims below the bound, so the traces arriving until the next
# round and the write-ahead log fit under it.
BYTES_GOAL = 0.85
VACUUM_STEP_PAGES = 2048
VACUUM_MAX_STEPS = 100_000
READER_POOL = 8

SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_NAMES = {Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}
# Tags that `_span_tags` derives from OTLP's own fields rather than reads from the attributes.
DERIVED_TAGS = frozenset({"span.kind", "otel.scope.name", "otel.status_code", "otel.status_description"})
SPAN_COLUMNS = "trace_id, span_id, parent_id, service, operation, kind, start_ns, end_ns, error, detail"

SCHEMA = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    error INTEGER NOT NULL,
    detail TEXT NOT NULL -- JSON: attributes, status, events, links, scope
);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_id, span_id);
CREATE INDEX spans_by_service ON spans (service, start_ns);
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX traces_by_start ON traces (start_ns);
CREATE TABLE operations (
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    kind TEXT NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (service, operation, kind)
) WITHOUT ROWID;
"""

UPSERT_TRACE = """
INSERT INTO traces (trace_id, start_ns, end_ns, span_count, error) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (trace_id) DO UPDATE SET
    start_ns = min(start_ns, excluded.start_ns),
    end_ns = max(end_ns, excluded.end_ns),
    span_count = span_count + excluded.span_count,
    error = max(error, excluded.error)
"""
UPSERT_OPERATION = """
INSERT INTO operations (service, operation, kind, last_seen_ns) VALUES (?, ?, ?, ?)
ON CONFLICT (service, operation, kind) DO UPDATE SET
    last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)
"""


def log(message: str) -> None:
    print(f"otlp sink: {message}", flush=True)


class StoreError(Exception):
    """The store path holds something that is not this sink's store."""


class QueryError(ValueError):
    """A query parameter that cannot be understood: answered with 400."""


@dataclass(frozen=True)
class Bounds:
    max_age_s: float = DEFAULT_MAX_AGE_S
    max_traces: int = DEFAULT_MAX_TRACES
    max_bytes: int = DEFAULT_MAX_BYTES

    def describe(self) -> str:
        return f"{self.max_age_s:g} s, {self.max_traces} traces, {self.max_bytes / 2**20:.0f} MiB"


class SpanRow(NamedTuple):
    """One span as the `spans` table stores it."""

    trace_id: str
    span_id: str
    parent_id: str
    service: str
    operation: str
    kind: str
    start_ns: int
    end_ns: int
    duration_us: int
    error: int
    detail: str


class StoredSpan(NamedTuple):
    """One span as the queries read it back (`SPAN_COLUMNS`)."""

    trace_id: str
    span_id: str
    parent_id: str
    service: str
    operation: str
    kind: str
    start_ns: int
    end_ns: int
    error: int
    detail: str


@dataclass(frozen=True)
class TraceQuery:
    """Jaeger's `GET /api/traces` parameters, parsed."""

    service: str = ""
    operation: str = ""
    start_ns: int = 0
    end_ns: int = 2**63 - 1
    min_duration_us: int | None = None
    max_duration_us: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    limit: int = DEFAULT_SEARCH_LIMIT
    trace_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PruneReport:
    removed: int
    seconds: float


# --- OTLP to rows -------------------------------------------------------------


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _any_value(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def spans_of(request: ExportTraceServiceRequest) -> list[SpanRow]:
    """The spans of an export request as rows; spans without a trace or span id are dropped."""
    rows = []
    for resource_spans in request.resource_spans:
        service = "unknown"
        for attribute in resource_spans.resource.attributes:
            if attribute.key == "service.name" and attribute.value.string_value:
                service = attribute.value.string_value
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                if not span.trace_id or not span.span_id:
                    continue
                detail: dict[str, Any] = {"attributes": {a.key: _any_value(a.value) for a in span.attributes}}
                if scope:
                    detail["scope"] = scope
                if span.status.code in STATUS_NAMES:
                    detail["status"] = STATUS_NAMES[span.status.code]
                if span.status.message:
                    detail["status_message"] = span.status.message
                if span.events:
                    detail["events"] = [
                        {
                            "time_ns": event.time_unix_nano,
                            "name": event.name,
                            "attributes": {a.key: _any_value(a.value) for a in event.attributes},
                        }
                        for event in span.events
                    ]
                if span.links:
                    detail["links"] = [
                        {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                        for link in span.links
                    ]
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                rows.append(
                    SpanRow(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        service=service,
                        operation=span.name,
                        kind=SPAN_KINDS.get(span.kind, ""),
                        start_ns=start,
                        end_ns=max(start, end),
                        duration_us=max(0, end - start) // 1000,
                        error=int(span.status.code == Status.STATUS_CODE_ERROR),
                        detail=json.dumps(detail, separators=(",", ":")),
                    )
                )
    return rows


_OTLP_JSON_IDS = frozenset({"traceId", "spanId", "parentSpanId"})


def _hex_ids_to_base64(node: Any) -> Any:
    # OTLP/JSON writes ids in hex where protobuf's JSON mapping expects base64.
    if isinstance(node, dict):
        return {
            key: (
                base64.b64encode(bytes.fromhex(value)).decode()
                if key in _OTLP_JSON_IDS and isinstance(value, str)
                else _hex_ids_to_base64(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def parse_export(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Raises ValueError (or DecodeError) when the body is not an export request."""
    request = ExportTraceServiceRequest()
    if "json" in content_type:
        ParseDict(_hex_ids_to_base64(json.loads(body)), request, ignore_unknown_fields=True)
    else:
        request.ParseFromString(body)
    return request


# --- the store ----------------------------------------------------------------


def _remove_store_files(path: Path) -> None:
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        name.unlink(missing_ok=True)


def _clear_leftovers(path: Path) -> None:
    """Removes what would make the store slow or unreadable; refuses a file that is not ours."""
    if not path.exists():
        # A write-ahead log without its database must not be replayed into a new one.
        _remove_store_files(path)
        return
    with path.open("rb") as handle:
        head = handle.read(100)
    size = path.stat().st_size
    if head.startswith(SQLITE_MAGIC):
        if len(head) == 100 and int.from_bytes(head[68:72], "big") not in (0, APPLICATION_ID):
            raise StoreError(f"{path} is a SQLite database of another program; pass another --store")
        return
    if not head.strip():
        _remove_store_files(path)
        return
    if head.lstrip().startswith(b"{"):
        log(f"{path} holds spans in the older JSON-lines format ({size / 2**20:.0f} MiB): removed")
        _remove_store_files(path)
        return
    raise StoreError(f"{path} is neither a trace store nor empty; pass another --store")


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit: every write opens its own short transaction (see `_transaction`).
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
    conn.execute(begin)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create_schema(conn: sqlite3.Connection) -> None:
    # auto_vacuum must be chosen before the first table; INCREMENTAL lets pruning shrink the file.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    # One transaction, the marks included: a store is complete or absent. (executescript
    # commits whatever is pending first, so the script brings its own transaction.)
    marks = f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}{marks}COMMIT;")


def _open_writer(path: Path, bounds: Bounds) -> sqlite3.Connection:
    conn = _connect(path)
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id == 0 and version == 0:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            conn.close()
            raise StoreError(f"{path} is a SQLite database of another program; pass another --store")
        _create_schema(conn)
    elif version != SCHEMA_VERSION:
        conn.close()
        log(f"{path} was written by another version of the sink (schema {version}): replaced")
        _remove_store_files(path)
        return _open_writer(path, bounds)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # The write-ahead log is cut back to this size at each checkpoint.
    conn.execute(f"PRAGMA journal_size_limit = {min(16 * 2**20, bounds.max_bytes // 8)}")
    conn.execute("PRAGMA cache_size = -16000")
    return conn


class Store:
    """Spans in SQLite: one writer connection behind a lock, a small pool of readers."""

    def __init__(self, path: Path, bounds: Bounds | None = None) -> None:
        self.path = path
        self.bounds = bounds or Bounds()
        path.parent.mkdir(parents=True, exist_ok=True)
        _clear_leftovers(path)
        try:
            self._writer = _open_writer(path, self.bounds)
        except sqlite3.DatabaseError as error:
            log(f"{path} cannot be read ({error}): replaced by an empty store")
            _remove_store_files(path)
            self._writer = _open_writer(path, self.bounds)
        self._write_lock = threading.Lock()
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue(maxsize=READER_POOL)

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A reader connection inside one read transaction: the queries see one snapshot."""
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = _connect(self.path)
            conn.execute("PRAGMA query_only = ON")
        reusable = False
        try:
            with _transaction(conn, "BEGIN"):
                yield conn
            reusable = True
        finally:
            if reusable:
                try:
                    self._readers.put_nowait(conn)
                except queue.Full:
                    conn.close()
            else:
                conn.close()

    # writes

    def add(self, spans: Sequence[SpanRow]) -> None:
        if not spans:
            return
        traces: dict[str, list[int]] = {}
        operations: dict[tuple[str, str, str], int] = {}
        for span in spans:
            summary = traces.get(span.trace_id)
            if summary is None:
                traces[span.trace_id] = [span.start_ns, span.end_ns, 1, span.error]
            else:
                summary[0] = min(summary[0], span.start_ns)
                summary[1] = max(summary[1], span.end_ns)
                summary[2] += 1
                summary[3] = max(summary[3], span.error)
            key = (span.service, span.operation, span.kind)
            operations[key] = max(operations.get(key, 0), span.end_ns)
        with self._write_lock, _transaction(self._writer) as conn:
            conn.executemany("INSERT OR IGNORE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", spans)
            conn.executemany(UPSERT_TRACE, [(trace_id, *summary) for trace_id, summary in traces.items()])
            conn.executemany(UPSERT_OPERATION, [(*key, seen) for key, seen in operations.items()])

    def prune(
        self,
        *,
        now_ns: int | None = None,
        budget_s: float = PRUNE_BUDGET_S,
        stop: threading.Event | None = None,
    ) -> PruneReport:
        """Deletes traces past the bounds, oldest first, then gives the freed pages back."""
        began = time.monotonic()
        stop = stop or threading.Event()
        now_ns = time.time_ns() if now_ns is None else now_ns
        cutoff_ns = now_ns - int(self.bounds.max_age_s * 1e9)
        removed = 0
        for _ in range(PRUNE_MAX_BATCHES):
            if time.monotonic() - began > budget_s or stop.is_set():
                break
            batch = self._prune_batch(cutoff_ns)
            if not batch:
                break
            removed += batch
        with self._write_lock:
            self._writer.execute("DELETE FROM operations WHERE last_seen_ns < ?", (cutoff_ns,))
        self._shrink(began + budget_s, stop)
        return PruneReport(removed=removed, seconds=time.monotonic() - began)

    def _prune_batch(self, cutoff_ns: int) -> int:
        with self._write_lock, _transaction(self._writer) as conn:
            rows = conn.execute(
                "SELECT trace_id, span_count FROM traces WHERE start_ns < ? ORDER BY start_ns LIMIT ?",
                (cutoff_ns, PRUNE_BATCH_TRACES),
            ).fetchall()
            if not rows:
                excess = self._excess_traces(conn)
                if excess <= 0:
                    return 0
                rows = conn.execute(
                    "SELECT trace_id, span_count FROM traces ORDER BY start_ns LIMIT ?",
                    (min(excess, PRUNE_BATCH_TRACES),),
                ).fetchall()
            chosen: list[tuple[str]] = []
            spans = 0
            for trace_id, span_count in rows:
                if chosen and spans + span_count > PRUNE_BATCH_SPANS:
                    break
                chosen.append((trace_id,))
                spans += span_count
            conn.executemany("DELETE FROM spans WHERE trace_id = ?", chosen)
            conn.executemany("DELETE FROM traces WHERE trace_id = ?", chosen)
            return len(chosen)

    def _excess_traces(self, conn: sqlite3.Connection) -> int:
        """How many of the oldest traces are over the count bound or the size goal."""
        count = int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])
        excess = count - self.bounds.max_traces
        used = _used_bytes(conn)
        goal = self.bounds.max_bytes * BYTES_GOAL
        if count and used > goal:
            excess = max(excess, math.ceil((used - goal) / (used / count)))
        return excess

    def _shrink(self, deadline: float, stop: threading.Event) -> None:
        """Returns free pages to the file system once the file is over the size goal."""
        for _ in range(VACUUM_MAX_STEPS):
            with self._write_lock:
                conn = self._writer
                page_size, pages, free = _pages(conn)
                if not free or pages * page_size <= self.bounds.max_bytes * BYTES_GOAL:
                    break
                conn.execute(f"PRAGMA incremental_vacuum({min(free, VACUUM_STEP_PAGES)})").fetchall()
            if time.monotonic() > deadline or stop.is_set():
                break
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # reads

    def services(self) -> list[str]:
        with self._reading() as conn:
            return [row[0] for row in conn.execute("SELECT DISTINCT service FROM operations ORDER BY 1")]

    def operations(self, service: str, kind: str = "") -> list[tuple[str, str]]:
        sql = "SELECT DISTINCT operation, kind FROM operations WHERE service = ?"
        params: list[str] = [service]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        with self._reading() as conn:
            return [(row[0], row[1]) for row in conn.execute(sql + " ORDER BY 1, 2", params)]

    def trace(self, trace_id: str) -> list[StoredSpan]:
        with self._reading() as conn:
            return _spans_of_trace(conn, trace_id)

    def find_traces(self, query: TraceQuery) -> list[list[StoredSpan]]:
        """The traces with a span matching `query`, the one with the newest such span first."""
        with self._reading() as conn:
            if query.trace_ids:
                found = [_spans_of_trace(conn, trace_id) for trace_id in query.trace_ids]
                return [spans for spans in found if spans]
            return [_spans_of_trace(conn, trace_id) for trace_id in _matching_traces(conn, query)]

    def stats(self) -> dict[str, int]:
        with self._reading() as conn:
            traces, spans = conn.execute(
                "SELECT count(*), coalesce(sum(span_count), 0) FROM traces"
            ).fetchone()
        return {"traces": int(traces), "spans": int(spans), "bytes": self.file_bytes()}

    def file_bytes(self) -> int:
        """The size of the store on disk: the database and its write-ahead log."""
        total = 0
        for name in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                total += name.stat().st_size
            except FileNotFoundError:
                pass
        return total


def _pages(conn: sqlite3.Connection) -> tuple[int, int, int]:
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return page_size, pages, free


def _used_bytes(conn: sqlite3.Connection) -> int:
    page_size, pages, free = _pages(conn)
    return (pages - free) * page_size


def _spans_of_trace(conn: sqlite3.Connection, trace_id: str) -> list[StoredSpan]:
    rows = conn.execute(f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,))
    return [StoredSpan(*row) for row in rows]


def _matching_traces(conn: sqlite3.Connection, query: TraceQuery) -> list[str]:
    # Walks the service's spans newest first (index spans_by_service) and stops at `limit` traces.
    sql = "SELECT trace_id, kind, error, detail FROM spans WHERE service = ? AND start_ns BETWEEN ? AND ?"
    params: list[object] = [query.service, query.start_ns, query.end_ns]
    if query.operation:
        sql += " AND operation = ?"
        params.append(query.operation)
    if query.min_duration_us is not None:
        sql += " AND duration_us >= ?"
        params.append(query.min_duration_us)
    if query.max_duration_us is not None:
        sql += " AND duration_us <= ?"
        params.append(query.max_duration_us)
    if query.tags.get("error") == "true":
        sql += " AND error = 1"
    other_tags = {key: value for key, value in query.tags.items() if key != "error"}
    for key in other_tags.keys() - DERIVED_TAGS:
        # A cheap first cut on the stored JSON text; `_tags_match` decides.
        sql += " AND instr(detail, ?) > 0"
        params.append(json.dumps(key) + ":")
    found: dict[str, None] = {}
    cursor = conn.execute(sql + " ORDER BY start_ns DESC", params)
    try:
        for trace_id, kind, error, detail in cursor:
            if trace_id in found:
                continue
            if query.tags and not _tags_match(query.tags, other_tags, kind, error, detail):
                continue
            found[trace_id] = None
            if len(found) >= query.limit:
                break
    finally:
        cursor.close()
    return list(found)


def _tags_match(tags: dict[str, str], other_tags: dict[str, str], kind: str, error: int, detail: str) -> bool:
    if "error" in tags and tags["error"] != ("true" if error else "false"):
        return False
    if not other_tags:
        return True
    have = {tag["key"]: _tag_text(tag["value"]) for tag in _span_tags(kind, error, json.loads(detail))}
    return all(have.get(key) == value for key, value in other_tags.items())


# --- Jaeger's JSON ------------------------------------------------------------


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    return {"key": key, "type": "string", "value": json.dumps(value, separators=(",", ":"))}


def _span_tags(kind: str, error: int, detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The span's attributes, then what Jaeger derives from OTLP's own fields."""
    tags = [_tag(key, value) for key, value in detail.get("attributes", {}).items()]
    if kind:
        tags.append(_tag("span.kind", kind))
    if "scope" in detail:
        tags.append(_tag("otel.scope.name", detail["scope"]))
    if "status" in detail:
        tags.append(_tag("otel.status_code", detail["status"]))
    if error:
        tags.append(_tag("error", True))
    if "status_message" in detail:
        tags.append(_tag("otel.status_description", detail["status_message"]))
    return tags


def jaeger_trace(trace_id: str, spans: Sequence[StoredSpan]) -> dict[str, Any]:
    services = sorted({span.service for span in spans})
    process_of = {service: f"p{n + 1}" for n, service in enumerate(services)}
    jaeger_spans = []
    for span in spans:
        detail = json.loads(span.detail)
        references = [{"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_id}]
        references = references if span.parent_id else []
        references += [
            {"refType": "FOLLOWS_FROM", "traceID": link["trace_id"], "spanID": link["span_id"]}
            for link in detail.get("links", [])
        ]
        jaeger_spans.append(
            {
                "traceID": span.trace_id,
                "spanID": span.span_id,
                "operationName": span.operation,
                "references": references,
                "startTime": span.start_ns // 1000,
                "duration": (span.end_ns - span.start_ns) // 1000,
                "tags": _span_tags(span.kind, span.error, detail),
                "logs": [
                    {
                        "timestamp": event["time_ns"] // 1000,
                        "fields": [
                            _tag("event", event["name"]),
                            *(_tag(key, value) for key, value in event["attributes"].items()),
                        ],
                    }
                    for event in detail.get("events", [])
                ],
                "processID": process_of[span.service],
                "warnings": None,
            }
        )
    return {
        "traceID": trace_id,
        "spans": jaeger_spans,
        "processes": {pid: {"serviceName": service, "tags": []} for service, pid in process_of.items()},
        "warnings": None,
    }


def jaeger_answer(data: Any, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}


# --- query parameters ---------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def parse_duration_us(text: str) -> int:
    """A Go duration ("10ms", "1.5s", "300us", "1m30s") in microseconds."""
    if text == "0":
        return 0
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration such as 10ms, 1.5s or 300us")
    return int(sum(float(number) * _UNIT_NS[unit] for number, unit in _DURATION_PART.findall(text)) // 1000)


def normalize_trace_id(text: str) -> str:
    """Jaeger's ids: up to 32 hex digits, lower case, padded with zeros on the left."""
    trace_id = text.strip().lower()
    if not trace_id or len(trace_id) > 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise QueryError(f"cannot parse traceID {text!r}: expected up to 32 hexadecimal digits")
    return trace_id.zfill(32)


def _one(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name) or [""]
    return values[-1].strip()


def _microseconds(params: dict[str, list[str]], name: str) -> int | None:
    text = _one(params, name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f"unable to parse param '{name}': {text!r} is not a time in microseconds") from None
    if value < 0:
        raise QueryError(f"unable to parse param '{name}': {text!r} is negative")
    return value


def _duration(params: dict[str, list[str]], name: str) -> int | None:
    text = _one(params, name)
    if not text:
        return None
    try:
        return parse_duration_us(text)
    except ValueError as error:
        raise QueryError(f"unable to parse param '{name}': {error}") from None


def _tags(params: dict[str, list[str]]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for text in params.get("tags", []):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise QueryError(
                f'malformed \'tags\' parameter {text!r}: expected a JSON object such as {{"error":"true"}}'
            )
        tags.update({str(key): _tag_text(value) for key, value in parsed.items()})
    for text in params.get("tag", []):
        key, colon, value = text.partition(":")
        if not colon or not key:
            raise QueryError(f"malformed 'tag' parameter {text!r}: expected key:value")
        tags[key] = value
    return tags


def parse_trace_query(params: dict[str, list[str]]) -> TraceQuery:
    """Jaeger's `GET /api/traces` parameters; raises QueryError with Jaeger's wording where it has one."""
    limit_text = _one(params, "limit")
    try:
        limit = int(limit_text) if limit_text else 0
    except ValueError:
        raise QueryError(f"unable to parse param 'limit': {limit_text!r} is not a number") from None
    if limit < 0:
        raise QueryError(f"unable to parse param 'limit': {limit_text!r} is negative")
    trace_ids = tuple(normalize_trace_id(text) for text in params.get("traceID", []) if text.strip())
    min_duration, max_duration = _duration(params, "minDuration"), _duration(params, "maxDuration")
    if min_duration is not None and max_duration is not None and max_duration < min_duration:
        raise QueryError("'maxDuration' should be greater than 'minDuration'")
    start, end = _microseconds(params, "start"), _microseconds(params, "end")
    query = TraceQuery(
        service=_one(params, "service"),
        operation=_one(params, "operation"),
        start_ns=0 if start is None else start * 1000,
        end_ns=2**63 - 1 if end is None else min(end * 1000 + 999, 2**63 - 1),
        min_duration_us=min_duration,
        max_duration_us=max_duration,
        tags=_tags(params),
        limit=min(limit or DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT),
        trace_ids=trace_ids,
    )
    if not query.service and not query.trace_ids:
        raise QueryError("parameter 'service' is required")
    if query.start_ns > query.end_ns:
        raise QueryError("'start' is after 'end'")
    return query


# --- HTTP ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: the exporters keep their connection; every answer carries its length.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without this, Nagle's algorithm and the
    # client's delayed ACK hold every small answer for some 40 ms.
    disable_nagle_algorithm = True
    server_version = "comptoir-otlp-sink"
    store: Store

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, body: Any, status: int = 200) -> None:
        self._reply(status, json.dumps(body, separators=(",", ":")).encode(), "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class OtlpHandler(_Handler):
    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._reply(411, b"Content-Length required\n", "text/plain")
            return
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(413, b"export request too large\n", "text/plain")
            return
        body = self.rfile.read(length)
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/traces":
            self._reply(404, b"only /v1/traces is served here\n", "text/plain")
            return
        content_type = self.headers.get("Content-Type") or ""
        try:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            spans = spans_of(parse_export(body, content_type))
        except (OSError, EOFError, zlib.error, ValueError, DecodeError, ParseError) as error:
            self._reply(400, f"not an OTLP export request: {error}\n".encode(), "text/plain")
            return
        try:
            self.store.add(spans)
        except sqlite3.Error as error:
            log(f"could not store {len(spans)} spans: {error}")
            self._reply(503, f"the store failed: {error}\n".encode(), "text/plain")
            return
        if "json" in content_type:
            self._reply(200, b"{}", "application/json")
        else:
            self._reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")


class QueryHandler(_Handler):
    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/")
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            self._answer(path, params)
        except QueryError as error:
            self._json(jaeger_answer(None, [{"code": 400, "msg": str(error)}]), 400)
        except Exception as error:  # noqa: BLE001 - answered as a 500, logged with its traceback
            log(f"GET {self.path} failed: {error!r}")
            traceback.print_exc(file=sys.stdout)
            self._json(jaeger_answer(None, [{"code": 500, "msg": f"the query failed: {error}"}]), 500)

    def _answer(self, path: str, params: dict[str, list[str]]) -> None:
        parts = [urllib.parse.unquote(part) for part in path.split("/")[1:]]
        if parts == ["api", "services"]:
            self._json(jaeger_answer(self.store.services()))
        elif len(parts) == 4 and parts[:2] == ["api", "services"] and parts[3] == "operations":
            self._json(jaeger_answer([name for name, _ in self.store.operations(parts[2])]))
        elif parts == ["api", "operations"]:
            service = _one(params, "service")
            if not service:
                raise QueryError("parameter 'service' is required")
            operations = self.store.operations(service, _one(params, "spanKind"))
            self._json(jaeger_answer([{"name": name, "spanKind": kind} for name, kind in operations]))
        elif len(parts) == 3 and parts[:2] == ["api", "traces"]:
            trace_id = normalize_trace_id(parts[2])
            spans = self.store.trace(trace_id)
            if spans:
                self._json(jaeger_answer([jaeger_trace(trace_id, spans)]))
            else:
                self._json(jaeger_answer(None, [{"code": 404, "msg": "trace not found"}]), 404)
        elif parts == ["api", "traces"]:
            found = self.store.find_traces(parse_trace_query(params))
            self._json(jaeger_answer([jaeger_trace(spans[0].trace_id, spans) for spans in found]))
        elif path == "":
            bounds = self.store.bounds
            self._json(
                {
                    "backend": "comptoir otlp sink",
                    **self.store.stats(),
                    "bounds": {
                        "max_age_s": bounds.max_age_s,
                        "max_traces": bounds.max_traces,
                        "max_bytes": bounds.max_bytes,
                    },
                }
            )
        else:
            self._json(jaeger_answer(None, [{"code": 404, "msg": f"no such route: {path}"}]), 404)


def _serving(handler: type[_Handler], store: Store) -> type[_Handler]:
    return type(handler.__name__, (handler,), {"store": store})


def run_pruner(store: Store, interval_s: float, stop: threading.Event) -> None:
    """Prunes at once (a store left over-full must shrink), then every `interval_s`."""
    while not stop.is_set():
        try:
            report = store.prune(stop=stop)
            if report.removed:
                stats = store.stats()
                log(
                    f"pruned {report.removed} traces in {report.seconds:.1f} s; the store keeps "
                    f"{stats['traces']} traces, {stats['bytes'] / 2**20:.1f} MiB"
                )
        except sqlite3.Error as error:
            log(f"pruning failed: {error}")
        stop.wait(interval_s)


# --- command line -------------------------------------------------------------


def _positive(kind: type[int] | type[float], what: str) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.otlp_sink",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env = os.environ.get
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--otlp-port", type=int, default=4318)
    parser.add_argument("--query-port", type=int, default=16686)
    parser.add_argument("--store", type=Path, default=Path("spans.sqlite"), help="the SQLite file")
    parser.add_argument(
        "--max-age-s",
        type=_positive(float, "a positive number of seconds"),
        default=env("COMPTOIR_TRACES_MAX_AGE_S", str(DEFAULT_MAX_AGE_S)),
        help=f"traces older than this go (default: $COMPTOIR_TRACES_MAX_AGE_S or {DEFAULT_MAX_AGE_S})",
    )
    parser.add_argument(
        "--max-traces",
        type=_positive(int, "a positive whole number"),
        default=env("COMPTOIR_TRACES_MAX_TRACES", str(DEFAULT_MAX_TRACES)),
        help="the oldest traces beyond this many go "
        f"(default: $COMPTOIR_TRACES_MAX_TRACES or {DEFAULT_MAX_TRACES})",
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive(int, "a positive whole number of bytes"),
        default=env("COMPTOIR_TRACES_MAX_BYTES", str(DEFAULT_MAX_BYTES)),
        help="the oldest traces go while the file is larger "
        f"(default: $COMPTOIR_TRACES_MAX_BYTES or {DEFAULT_MAX_BYTES})",
    )
    parser.add_argument(
        "--prune-interval-s",
        type=_positive(float, "a positive number of seconds"),
        default=DEFAULT_PRUNE_INTERVAL_S,
        help="how often the bounds are enforced (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.max_bytes < 2**20:
        parser.error(f"--max-bytes {args.max_bytes} is below the 1 MiB a store needs")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bounds = Bounds(max_age_s=args.max_age_s, max_traces=args.max_traces, max_bytes=args.max_bytes)
    began = time.monotonic()
    try:
        store = Store(args.store, bounds)
    except (StoreError, OSError, sqlite3.Error) as error:
        log(f"cannot open the store: {error}")
        return 2
    try:
        otlp = ThreadingHTTPServer((args.host, args.otlp_port), _serving(OtlpHandler, store))
        query = ThreadingHTTPServer((args.host, args.query_port), _serving(QueryHandler, store))
    except OSError as error:
        log(f"cannot listen on {args.host} (OTLP {args.otlp_port}, query {args.query_port}): {error}")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threads = [
        threading.Thread(target=otlp.serve_forever, args=(0.1,), name="otlp", daemon=True),
        threading.Thread(target=query.serve_forever, args=(0.1,), name="query", daemon=True),
        threading.Thread(
            target=run_pruner, args=(store, args.prune_interval_s, stop), name="prune", daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    log(
        f"OTLP/HTTP on {args.host}:{otlp.server_port}, query on {args.host}:{query.server_port}, "
        f"store {args.store} ({store.file_bytes() / 2**20:.1f} MiB; bounds {bounds.describe()}), "
        f"ready in {time.monotonic() - began:.2f} s"
    )
    # Short waits: the signal handler runs between them.
    while not stop.wait(0.1):
        pass
    otlp.shutdown()
    query.shutdown()
    threads[2].join(timeout=10)
    store.close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
