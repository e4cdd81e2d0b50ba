"""Order saga benchmark: both SAGA_MODEs through the gateway, on the running devstack.

    .venv/bin/python bench/saga/run.py                              # orch, choreo, choreo, orch
    .venv/bin/python bench/saga/run.py --modes orchestration --saturation-orders 500

Needs the whole platform up (`python -m devstack up`), preferably started with the
Makefile's RATE_LIMITS_ENV exported (raised rate limits; the saga's timings as
shipped). The script switches modes itself: it restarts every
`order_service.<kind>` process of services/order_service/Procfile with
`SAGA_MODE=<mode>` and the RATE_LIMITS_ENV values (those already in the
environment win).

Per mode, in that order:

1. warm-up: a few orders through every client, drained.
2. saturation: closed loop, N asyncio clients (aiohttp, one customer each), each
   placing a 1-line order as soon as its previous POST was answered, until
   --saturation-orders or --saturation-seconds. Then the backlog is drained.
   Confirmed orders/s = CONFIRMED orders / (last CONFIRMED - first POST). The time
   an order became CONFIRMED is the order's `updated_at` from the list endpoint
   (the last write to the row is the CONFIRMED transition; checked against
   `status_history` on a sample), read only after the backlog is drained.
   The drain is watched with one count query on order_service's database every
   0.2 s (not through the API: paging every customer's order list once a second
   cost order_service more CPU than the orders themselves), so the measuring
   adds next to nothing to the platform's work.
   CPU ms per order: utime+stime (+ reaped children) of every process in
   .devstack/run/*.pid, its process group and its descendants (PostgreSQL's
   backends), read from /proc before the first POST and once what the orders set
   off downstream is done too (each order's mail sent, its stock committed or
   released: `wait_downstream`, count queries on those services' databases), so
   the window holds each order's whole work. SQL statements per order, by
   service: the chassis' statement counter (`comptoir_db_queries_total`), read
   from every process's /metrics (the endpoints Prometheus scrapes) just outside
   that window: the exact measure of a change that removes queries, where CPU
   moves within the noise.
3. open loop: --rate orders/s for --open-seconds, each POST sent at its scheduled
   time on a clock (from whichever customer is next, round robin). Latency =
   CONFIRMED `at` in the order's `status_history` (order_service's wall clock, same
   host) minus the scheduled send time: no polling load during the phase; the
   details are read after it.

Before the modes, the floors of the hand-offs an order is made of, each measured
now, the cheapest of FLOOR_ROUNDS rounds: a minimal Django request (`GET
/api/users/me/` straight to user_service) and its caller's side (a synchronous
httpx.Client; the services' urllib3 client costs less), the cheapest statement
through Django's ORM (reads returning a model or a value, an UPDATE, in a
user_service shell; the same read through a raw cursor for reference), a no-op Celery task
(sender, Redis, worker). The saturation phase counts, per order, the Django
requests, statements (and writes), Celery tasks and events relayed and handled;
the summary costs them at the floors (`handoff_floor`): what the order's
hand-offs cost before any of the platform's own work.

Results: printed, and written to bench/saga/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = REPO_ROOT / ".devstack" / "run"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
GATEWAY_URL = os.environ.get("COMPTOIR_GATEWAY_URL", "http://127.0.0.1:8000")
ORDER_SERVICE_URL = os.environ.get("ORDER_SERVICE_URL", "http://127.0.0.1:8003")
STAFF_EMAIL = "staff@comptoir.dev"
STAFF_PASSWORD = "Comptoir-staff-2026"  # noqa: S105 - the published demo seed
TERMINAL = frozenset({"CONFIRMED", "CANCELLED"})
CLK_TCK = os.sysconf("SC_CLK_TCK")
LIST_PAGE_SIZE = 20  # order_service's list: DRF's PAGE_SIZE, no page_size parameter

# The Makefile's RATE_LIMITS_ENV: rate limits out of the way, everything else as shipped.
RATE_LIMITS_ENV = {
    "GATEWAY_RATE_LIMIT_AUTHENTICATED": "100000/minute",
    "GATEWAY_RATE_LIMIT_ANONYMOUS": "100000/minute",
    "GATEWAY_RATE_LIMIT_LOGIN": "10000/minute",
    "THROTTLE_LOGIN": "10000/minute",
    "THROTTLE_REGISTER": "10000/minute",
    "THROTTLE_SERVICE_TOKEN": "10000/minute",
}


# ------------------------------------------------- SQL statements (metrics)

PROMETHEUS_URL = os.environ.get("COMPTOIR_PROMETHEUS_URL", "http://127.0.0.1:9090")
STATEMENTS_METRIC = "comptoir_db_queries_total"


def metrics_endpoints() -> dict[str, str]:
    """Every platform process that serves metrics (process name → its /metrics URL),
    as Prometheus scrapes them: the devstack writes its scrape targets."""
    with urllib.request.urlopen(f"{PROMETHEUS_URL}/api/v1/targets?state=active", timeout=5) as response:  # noqa: S310
        targets = json.load(response)["data"]["activeTargets"]
    return {t["labels"]["process"]: t["scrapeUrl"] for t in targets if "process" in t["labels"]}


# The chassis' counters read around the saturation window, each summed by service:
# how many statements, Django requests, Celery tasks and events one order costs.
COUNTERS = {
    "statements": STATEMENTS_METRIC,
    "writes": STATEMENTS_METRIC,  # the INSERTs, UPDATEs and DELETEs among them
    "django_requests": "comptoir_http_requests_total",
    "celery_tasks": "comptoir_celery_tasks_total",
    "events_relayed": "comptoir_outbox_relayed_total",
    "events_handled": "comptoir_consumer_messages_total",
}
# Requests that are not the platform's work for an order: Prometheus' scrapes and probes.
NOT_ORDER_ROUTES = ("health/", "metrics")
WRITE_KINDS = frozenset({"insert", "update", "delete"})


def _counted(counter: str, labels: dict[str, str]) -> bool:
    if counter == "django_requests":
        return not labels.get("route", "").startswith(NOT_ORDER_ROUTES)
    if counter == "events_handled":
        return labels.get("outcome") == "handled"
    if counter == "writes":
        return labels.get("statement") in WRITE_KINDS
    return True


def _samples(url: str) -> Iterator[Sample]:
    """Every sample a process's /metrics serves now."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        yield from family.samples


def counter_snapshot(endpoints: dict[str, str]) -> dict[str, dict[str, float]]:
    """COUNTERS as each service has counted them so far, read from each process's
    /metrics now, not from Prometheus' last scrape. Statements are those run
    through Django (`comptoir_db_queries_total`, every kind; transaction control
    and the health check are not Django's statements)."""
    totals: dict[str, dict[str, float]] = {name: {} for name in COUNTERS}
    for url in endpoints.values():
        for sample in _samples(url):
            for counter, metric in COUNTERS.items():
                if sample.name == metric and _counted(counter, sample.labels):
                    service = sample.labels.get("service", "?")
                    totals[counter][service] = totals[counter].get(service, 0.0) + sample.value
    return totals


def statements_delta(before: dict[str, float], after: dict[str, float], orders: int) -> dict[str, Any]:
    raw = {name: (after.get(name, 0.0) - before.get(name, 0.0)) / orders for name in sorted(after)}
    return {
        "per_order": {name: round(value, 1) for name, value in raw.items()},
        "total_per_order": round(sum(raw.values()), 1),
    }


def handoffs_delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], orders: int
) -> dict[str, float]:
    """Per order: Django requests, writes among the statements, Celery tasks, events
    relayed and handled (every service)."""
    return {
        name: (sum(after[name].values()) - sum(before[name].get(s, 0.0) for s in after[name])) / orders
        for name in COUNTERS
        if name != "statements"
    }


# ------------------------------------------------------------------ CPU (/proc)


@dataclass(frozen=True)
class ProcStat:
    ppid: int
    pgrp: int
    own_ticks: int  # utime + stime
    child_ticks: int  # cutime + cstime (children already reaped)
    comm: str


def _read_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # after the comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime
    return ProcStat(
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        own_ticks=int(fields[11]) + int(fields[12]),
        child_ticks=int(fields[13]) + int(fields[14]),
        comm=comm,
    )


def _all_stats() -> dict[int, ProcStat]:
    stats: dict[int, ProcStat] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    return stats


def _machine_busy_ticks() -> int:
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return values[0] + values[1] + values[2] + values[5] + values[6] + values[7]


@dataclass
class CpuSnapshot:
    at: float
    per_process: dict[str, float]  # devstack name -> CPU seconds (group + descendants)
    machine_busy_s: float
    loadgen_s: float
    others: dict[int, tuple[str, float]]  # pid -> (comm, CPU seconds) outside the devstack


def cpu_snapshot() -> CpuSnapshot:
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    per_process: dict[str, float] = {}
    claimed: set[int] = set()
    for pid_file in sorted(RUN_DIR.glob("*.pid")):
        try:
            leader = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if leader not in stats:
            continue
        members = {pid for pid, stat in stats.items() if stat.pgrp == stats[leader].pgrp}
        members.add(leader)
        frontier = list(members)
        while frontier:  # descendants in other groups (PostgreSQL backends call setsid)
            for child in children.get(frontier.pop(), []):
                if child not in members:
                    members.add(child)
                    frontier.append(child)
        members -= claimed
        claimed |= members
        ticks = sum(stats[p].own_ticks + stats[p].child_ticks for p in members)
        per_process[pid_file.name.removesuffix(".pid")] = ticks / CLK_TCK
    me = os.getpid()
    claimed.add(me)
    others = {
        pid: (stat.comm, stat.own_ticks / CLK_TCK)
        for pid, stat in stats.items()
        if pid not in claimed and stat.own_ticks > 0
    }
    times = os.times()
    return CpuSnapshot(
        at=time.monotonic(),
        per_process=per_process,
        machine_busy_s=_machine_busy_ticks() / CLK_TCK,
        loadgen_s=times.user + times.system,
        others=others,
    )


def cpu_ms_per_unit(before: CpuSnapshot, after: CpuSnapshot, units: int, *names: str) -> float:
    """CPU ms per unit of the named devstack processes (all of them when none is
    named) between two snapshots, unrounded."""
    chosen = names or tuple(after.per_process)
    seconds = sum(after.per_process.get(n, 0.0) - before.per_process.get(n, 0.0) for n in chosen)
    return 1000 * seconds / units


def loadgen_ms_per_unit(before: CpuSnapshot, after: CpuSnapshot, units: int) -> float:
    """This process's CPU ms per unit between two snapshots, unrounded."""
    return 1000 * (after.loadgen_s - before.loadgen_s) / units


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot, orders: int) -> dict[str, Any]:
    per_order = {
        name: round(1000 * (after.per_process[name] - before.per_process.get(name, 0.0)) / orders, 2)
        for name in after.per_process
    }
    platform_s = sum(after.per_process.values()) - sum(
        before.per_process.get(name, 0.0) for name in after.per_process
    )
    others = sorted(
        (
            (comm, seconds - before.others.get(pid, (comm, 0.0))[1])
            for pid, (comm, seconds) in after.others.items()
        ),
        key=lambda item: -item[1],
    )
    wall = after.at - before.at
    machine = after.machine_busy_s - before.machine_busy_s
    loadgen = after.loadgen_s - before.loadgen_s
    return {
        "window_s": round(wall, 2),
        "ms_per_order": dict(sorted(per_order.items(), key=lambda item: -item[1])),
        "platform_ms_per_order": round(1000 * platform_s / orders, 1),
        "loadgen_ms_per_order": round(1000 * loadgen / orders, 1),
        "machine_busy_cores": round(machine / wall, 2),
        "platform_cores": round(platform_s / wall, 2),
        "loadgen_cores": round(loadgen / wall, 2),
        "other_cores": round((machine - platform_s - loadgen) / wall, 2),
        "top_other_processes_cpu_s": [(comm, round(s, 2)) for comm, s in others[:6] if s > 0.05],
    }


# ------------------------------------------------------------------ the platform


@dataclass(frozen=True)
class Customer:
    user_id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Placed:
    order_id: int
    customer: int
    sent_at: float  # wall clock of the POST (the scheduled time in the open loop)
    post_ms: float
    status: str = "PENDING"
    confirmed_at: float | None = None


def _checked(response: httpx.Response, *expected: int) -> Any:
    """`_check` for the floors' httpx responses."""
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: "
            f"{response.text[:300]}"
        )
    return response.json() if response.content else None


async def _check(response: aiohttp.ClientResponse, *expected: int) -> Any:
    body = await response.read()
    if response.status not in expected:
        raise RuntimeError(
            f"{response.method} {response.url} -> {response.status}: {body[:300].decode(errors='replace')}"
        )
    return json.loads(body) if body else None


# What a failed request raises: the client's errors, a timeout, or _check's refusal.
REQUEST_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError)


def _wall(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Api:
    """The platform through the gateway. The load is sent with aiohttp: httpx's
    AsyncClient costs about ten times its CPU per request (2.5 against 0.2 ms,
    3,000 requests over 24 connections each), which the benchmark's process
    would take from the two cores the platform is measured on."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.http = session
        self.staff: dict[str, str] = {}

    async def call(self, method: str, url: str, *expected: int, **kwargs: Any) -> Any:
        async with self.http.request(method, url, **kwargs) as response:
            return await _check(response, *expected)

    async def login(self, email: str, password: str) -> str:
        body = await self.call(
            "POST", "/api/users/auth/login/", 200, json={"email": email, "password": password}
        )
        return str(body["access"])

    async def setup_staff(self) -> None:
        self.staff = {"Authorization": f"Bearer {await self.login(STAFF_EMAIL, STAFF_PASSWORD)}"}

    async def new_customer(self, balance: str) -> Customer:
        email = f"bench-saga-{uuid.uuid4().hex[:12]}@example.com"
        password = f"Bench-{uuid.uuid4().hex}"
        user = await self.call(
            "POST",
            "/api/users/register/",
            201,
            json={"email": email, "password": password, "full_name": "Bench"},
        )
        await self.call(
            "POST",
            f"/api/payments/wallets/{user['id']}/credit/",
            200,
            json={"amount": balance},
            headers=self.staff,
        )
        return Customer(user_id=int(user["id"]), email=email, token=await self.login(email, password))

    async def new_product(self, stock: int) -> int:
        sku = f"BENCH-{uuid.uuid4().hex[:10].upper()}"
        product = await self.call(
            "POST",
            "/api/products/",
            201,
            json={
                "sku": sku,
                "name": f"Bench product {sku}",
                "description": "saga benchmark",
                "price": "1.00",
                "currency": "EUR",
                "category": "coffee",
                "is_active": True,
            },
            headers=self.staff,
        )
        await self.call(
            "PUT", f"/api/products/{product['id']}/stock/", 200, json={"quantity": stock}, headers=self.staff
        )
        return int(product["id"])

    async def place(self, customer: Customer, product_id: int) -> tuple[int, str]:
        body = await self.call(
            "POST",
            "/api/orders/",
            201,
            202,
            json={"lines": [{"product_id": product_id, "quantity": 1}]},
            headers=customer.headers,
        )
        return int(body["id"]), str(body["status"])

    async def detail(self, customer: Customer, order_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "GET", f"/api/orders/{order_id}/", 200, headers=customer.headers
        )
        return result


def _service_db(service: str) -> str:
    """A service's database on the devstack (its role's password is its name)."""
    return os.environ.get(
        f"COMPTOIR_BENCH_{service.split('_')[0].upper()}_DB",
        f"postgresql://{service}:{service}@127.0.0.1:{os.environ.get('COMPTOIR_PG_PORT', '5433')}/{service}",
    )


ORDER_DB_DSN = _service_db("order_service")
# What an order sets off once it is terminal: its mail (email_service) and the
# commit or release of its stock (product_service).
DOWNSTREAM_PENDING = {
    "email_service": (
        "SELECT %(orders)s::int - count(*) FROM mailer_sentemail WHERE object_id = ANY(%(ids)s) "
        "AND template IN ('order_confirmed', 'order_cancelled') AND status <> 'QUEUED'"
    ),
    "product_service": (
        "SELECT count(*) FROM catalog_stockreservation WHERE order_id = ANY(%(ids)s) AND status = 'RESERVED'"
    ),
}
COUNT_NOT_TERMINAL = (
    "SELECT count(*) FROM orders_order WHERE id = ANY(%s) AND status NOT IN ('CONFIRMED', 'CANCELLED')"
)


async def wait_terminal(placed: list[Placed], *, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Waits until every placed order is terminal, watching order_service's database."""
    ids = [p.order_id for p in placed]
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(ORDER_DB_DSN, autocommit=True) as connection:
        while True:
            cursor = await connection.execute(COUNT_NOT_TERMINAL, (ids,))
            row = await cursor.fetchone()
            if row is not None and row[0] == 0:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(interval_s)


async def wait_downstream(placed: list[Placed], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Waits until what the terminal orders set off is done too: every order's
    mail sent (or failed for good) and no stock still held for one. The saturation
    phase's CPU window ends here, so it holds each order's whole work, not only
    what came before its confirmation."""
    ids = [str(p.order_id) for p in placed]
    deadline = time.monotonic() + timeout_s
    connections = {
        service: await psycopg.AsyncConnection.connect(_service_db(service), autocommit=True)
        for service in DOWNSTREAM_PENDING
    }
    try:
        while True:
            pending = 0
            for service, query in DOWNSTREAM_PENDING.items():
                cursor = await connections[service].execute(query, {"orders": len(ids), "ids": ids})
                row = await cursor.fetchone()
                pending += row[0] if row is not None else len(ids)
            if pending == 0:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(interval_s)
    finally:
        for connection in connections.values():
            await connection.close()


async def drain(
    api: Api, customers: list[Customer], placed: list[Placed], *, timeout_s: float, interval_s: float = 1.0
) -> bool:
    """Polls each customer's order list (newest first) until every placed order is terminal.

    Sets status and, for CONFIRMED orders, confirmed_at = the row's updated_at.
    """
    by_id = {p.order_id: p for p in placed}
    deadline = time.monotonic() + timeout_s
    while True:
        pending: dict[int, set[int]] = {}
        for p in placed:
            if p.status not in TERMINAL:
                pending.setdefault(p.customer, set()).add(p.order_id)
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False

        async def sweep(index: int, wanted: set[int]) -> None:
            customer = customers[index]
            url: str | None = "/api/orders/"
            for _ in range(len(placed) // LIST_PAGE_SIZE + 2):
                if url is None or not wanted:
                    return
                page = await api.call("GET", url, 200, headers=customer.headers)
                for row in page["results"]:
                    order = by_id.get(int(row["id"]))
                    if order is None:
                        continue
                    wanted.discard(order.order_id)
                    order.status = str(row["status"])
                    if order.status == "CONFIRMED":
                        order.confirmed_at = _wall(row["updated_at"])
                url = page["next"]

        started = time.monotonic()
        await asyncio.gather(*(sweep(index, wanted) for index, wanted in pending.items()))
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ------------------------------------------------------------------ phases


@dataclass
class Setup:
    customers: list[Customer]
    products: list[int]


async def closed_loop(
    api: Api, setup: Setup, *, clients: int, max_orders: int, max_seconds: float
) -> tuple[list[Placed], float, float, int]:
    placed: list[Placed] = []
    errors = 0
    deadline = time.monotonic() + max_seconds
    issued = 0

    async def client(index: int) -> None:
        nonlocal issued, errors
        customer = setup.customers[index]
        product = setup.products[index % len(setup.products)]
        while issued < max_orders and time.monotonic() < deadline:
            issued += 1
            sent = time.time()
            try:
                order_id, status = await api.place(customer, product)
            except REQUEST_ERRORS as exc:
                errors += 1
                if errors <= 3:
                    print(f"  POST failed: {exc}", file=sys.stderr)
                continue
            placed.append(Placed(order_id, index, sent, 1000 * (time.time() - sent), status))

    first = time.time()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return placed, first, time.time(), errors


async def saturation(
    api: Api, setup: Setup, *, clients: int, max_orders: int, max_seconds: float, drain_s: float
) -> dict[str, Any]:
    endpoints = await asyncio.to_thread(metrics_endpoints)
    counters_before = await asyncio.to_thread(counter_snapshot, endpoints)
    before = cpu_snapshot()
    placed, first_post, last_answer, errors = await closed_loop(
        api, setup, clients=clients, max_orders=max_orders, max_seconds=max_seconds
    )
    backlog_at_end = len(placed)
    await wait_terminal(placed, timeout_s=drain_s)
    settled = await wait_downstream(placed, timeout_s=drain_s)
    after = cpu_snapshot()
    counters_after = await asyncio.to_thread(counter_snapshot, endpoints)
    drained = await drain(api, setup.customers, placed, timeout_s=drain_s)
    confirmed = [p for p in placed if p.status == "CONFIRMED" and p.confirmed_at is not None]
    last_confirmed = max((p.confirmed_at for p in confirmed if p.confirmed_at), default=first_post)
    # updated_at vs the CONFIRMED entry of status_history, on a sample
    skews = []
    for p in confirmed[:: max(1, len(confirmed) // 10)][:10]:
        detail = await api.detail(setup.customers[p.customer], p.order_id)
        confirmed_at = [_wall(h["at"]) for h in detail["status_history"] if h["to_status"] == "CONFIRMED"]
        if confirmed_at and p.confirmed_at is not None:
            skews.append(round(1000 * (p.confirmed_at - confirmed_at[0]), 1))
    span = last_confirmed - first_post
    return {
        "clients": clients,
        "orders_placed": len(placed),
        "post_errors": errors,
        "confirmed": len(confirmed),
        "cancelled": sum(p.status == "CANCELLED" for p in placed),
        "not_terminal": sum(p.status not in TERMINAL for p in placed),
        "drained": drained,
        "downstream_settled": settled,
        "send_phase_s": round(last_answer - first_post, 2),
        "accepted_per_s": round(backlog_at_end / (last_answer - first_post), 1),
        "first_post_to_last_confirmed_s": round(span, 2),
        "confirmed_per_s": round(len(confirmed) / span, 1) if span > 0 else 0.0,
        "post_ms_p50": round(percentile([p.post_ms for p in placed], 0.5), 1),
        "post_ms_p99": round(percentile([p.post_ms for p in placed], 0.99), 1),
        "updated_at_minus_history_ms_sample": skews,
        "cpu": cpu_delta(before, after, max(1, len(placed))),
        "statements": statements_delta(
            counters_before["statements"], counters_after["statements"], max(1, len(placed))
        ),
        "handoffs_per_order": {
            name: round(value, 2)
            for name, value in handoffs_delta(counters_before, counters_after, max(1, len(placed))).items()
        },
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


async def open_loop(api: Api, setup: Setup, *, rate: float, seconds: float, drain_s: float) -> dict[str, Any]:
    total = int(rate * seconds)
    placed: list[Placed] = []
    lags: list[float] = []
    errors = 0

    async def send(index: int, scheduled_wall: float) -> None:
        nonlocal errors
        customer_index = index % len(setup.customers)
        sent = time.time()
        lags.append(1000 * (sent - scheduled_wall))
        try:
            order_id, status = await api.place(
                setup.customers[customer_index], setup.products[index % len(setup.products)]
            )
        except REQUEST_ERRORS as exc:
            errors += 1
            if errors <= 3:
                print(f"  POST failed: {exc}", file=sys.stderr)
            return
        placed.append(Placed(order_id, customer_index, scheduled_wall, 1000 * (time.time() - sent), status))

    start_mono = time.monotonic() + 0.2
    start_wall = time.time() + (start_mono - time.monotonic())
    tasks = []
    for i in range(total):
        await asyncio.sleep(max(0.0, start_mono + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(send(i, start_wall + i / rate)))
    await asyncio.gather(*tasks)
    drained = await drain(api, setup.customers, placed, timeout_s=drain_s)
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(8)

    async def read(p: Placed) -> None:
        async with semaphore:
            detail = await api.detail(setup.customers[p.customer], p.order_id)
        for change in detail["status_history"]:
            if change["to_status"] == "CONFIRMED":
                latencies.append(1000 * (_wall(change["at"]) - p.sent_at))
                return

    await asyncio.gather(*(read(p) for p in placed if p.status == "CONFIRMED"))
    p50 = percentile(latencies, 0.5)
    p99 = percentile(latencies, 0.99)
    return {
        "rate": rate,
        "scheduled": total,
        "orders_placed": len(placed),
        "post_errors": errors,
        "confirmed": len(latencies),
        "cancelled": sum(p.status == "CANCELLED" for p in placed),
        "drained": drained,
        "send_lag_ms_p99": round(percentile(lags, 0.99), 1),
        "post_ms_p50": round(percentile([p.post_ms for p in placed], 0.5), 1),
        "post_ms_p99": round(percentile([p.post_ms for p in placed], 0.99), 1),
        "confirmed_ms_p50": round(p50, 1),
        "confirmed_ms_p90": round(percentile(latencies, 0.9), 1),
        "confirmed_ms_p99": round(p99, 1),
        "confirmed_ms_max": round(max(latencies, default=float("nan")), 1),
        "p99_over_p50": round(p99 / p50, 2) if p50 > 0 else None,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


# ------------------------------------------------------------------ modes


def order_service_processes() -> list[str]:
    names = []
    for line in (REPO_ROOT / "services" / "order_service" / "Procfile").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            names.append(f"order_service.{line.split(':', 1)[0].strip()}")
    return names


def switch_mode(mode: str) -> None:
    env = {**RATE_LIMITS_ENV, **os.environ, "SAGA_MODE": mode}
    for name in order_service_processes():
        subprocess.run(
            [sys.executable, "-m", "devstack", "restart", name],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            timeout=240,
            stdout=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 120
    for url in (f"{ORDER_SERVICE_URL}/health/ready", f"{GATEWAY_URL}/health/ready"):
        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready after the restart")
            time.sleep(0.5)


@dataclass
class ModeRun:
    mode: str
    started: str
    saturation: dict[str, Any] = field(default_factory=dict)
    open_loop: dict[str, Any] = field(default_factory=dict)
    open_loop_other_rates: list[dict[str, Any]] = field(default_factory=list)


async def run_mode(api: Api, setup: Setup, mode: str, args: argparse.Namespace) -> ModeRun:
    run = ModeRun(mode=mode, started=datetime.now().isoformat(timespec="seconds"))
    warm = await closed_loop(api, setup, clients=args.clients, max_orders=2 * args.clients, max_seconds=20)
    await drain(api, setup.customers, warm[0], timeout_s=args.drain_seconds)
    print(
        f"[{mode}] saturation: {args.clients} clients, "
        f"{args.saturation_orders} orders / {args.saturation_seconds} s"
    )
    run.saturation = await saturation(
        api,
        setup,
        clients=args.clients,
        max_orders=args.saturation_orders,
        max_seconds=args.saturation_seconds,
        drain_s=args.drain_seconds,
    )
    s = run.saturation
    print(
        f"  {s['confirmed']}/{s['orders_placed']} confirmed in {s['first_post_to_last_confirmed_s']} s -> "
        f"{s['confirmed_per_s']} confirmed/s (POSTs accepted at {s['accepted_per_s']}/s); "
        f"platform CPU {s['cpu']['platform_ms_per_order']} ms/order"
    )
    statements = s["statements"]
    print(
        f"  {statements['total_per_order']} SQL statements per order through Django: "
        + ", ".join(f"{name} {count}" for name, count in statements["per_order"].items() if count)
    )
    await asyncio.sleep(args.pause_seconds)
    print(f"[{mode}] open loop: {args.rate}/s for {args.open_seconds} s")
    run.open_loop = await open_loop(
        api, setup, rate=args.rate, seconds=args.open_seconds, drain_s=args.drain_seconds
    )
    o = run.open_loop
    print(
        f"  {o['confirmed']}/{o['scheduled']} confirmed; POST->CONFIRMED p50 {o['confirmed_ms_p50']} ms, "
        f"p99 {o['confirmed_ms_p99']} ms (p99/p50 {o['p99_over_p50']})"
    )
    for rate in args.extra_rates:
        print(f"[{mode}] open loop: {rate}/s for {args.open_seconds} s")
        extra = await open_loop(api, setup, rate=rate, seconds=args.open_seconds, drain_s=args.drain_seconds)
        run.open_loop_other_rates.append(extra)
        print(
            f"  {extra['confirmed']}/{extra['scheduled']} confirmed; POST->CONFIRMED p50 "
            f"{extra['confirmed_ms_p50']} ms, p99 {extra['confirmed_ms_p99']} ms"
        )
    return run


# Django requests one order costs, by mode: the POST (order_service) and its quote
# (product_service) in both; orchestration adds verify (user), reserve and charge
# (product, payment) over HTTP; choreography verifies the user over HTTP. Both
# commit the stock and mail in event handlers (not counted in this floor).
DJANGO_REQUESTS_PER_ORDER = {"orchestration": 5, "choreography": 3}
USER_SERVICE_URL = os.environ.get("USER_SERVICE_URL", "http://127.0.0.1:8001")


# Each floor is measured this many times in a row and the cheapest round kept: a
# floor is a lower bound, and what else the machine does (PostgreSQL's
# autovacuum after the events benchmark, a checkpoint) only ever adds to a round.
FLOOR_ROUNDS = 3


def client_floor(customer: Customer, requests: int) -> list[float]:
    """CPU of the caller's side of a service-to-service request, measured now, per
    round: a synchronous httpx.Client, keep-alive, the same request one after
    another, answer parsed; the CPU of the thread that runs it. The services'
    ServiceClient is on urllib3, which costs less per call (241 against 435 µs,
    bench/saga/REPORT.md): this floor errs high."""
    rounds: list[float] = []
    with httpx.Client(base_url=USER_SERVICE_URL, timeout=30.0) as client:
        for _ in range(min(200, requests)):  # warm-up
            _checked(client.get("/api/users/me/", headers=customer.headers), 200)
        for _ in range(FLOOR_ROUNDS):
            started = time.thread_time()
            for _ in range(requests):
                _checked(client.get("/api/users/me/", headers=customer.headers), 200)
            rounds.append(round(1000 * (time.thread_time() - started) / requests, 3))
    return rounds


async def request_floor(customers: list[Customer], *, requests: int, concurrency: int = 8) -> dict[str, Any]:
    """CPU of the cheapest authenticated Django request of the platform, measured now:
    `GET /api/users/me/` straight to user_service (DRF, JWT verification, one indexed
    read, keep-alive), `requests` of them in a closed loop, FLOOR_ROUNDS times after
    a warm-up. Times the number of Django requests an order needs, it bounds what an
    order can cost in this stack."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    rounds: list[dict[str, float]] = []
    async with httpx.AsyncClient(base_url=USER_SERVICE_URL, timeout=30.0, limits=limits) as client:
        remaining = requests

        async def worker(customer: Customer) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                _checked(await client.get("/api/users/me/", headers=customer.headers), 200)

        await asyncio.gather(*(worker(customers[n % len(customers)]) for n in range(concurrency)))  # warm-up
        for _ in range(FLOOR_ROUNDS):
            remaining = requests
            before = cpu_snapshot()
            await asyncio.gather(*(worker(customers[n % len(customers)]) for n in range(concurrency)))
            after = cpu_snapshot()
            server = cpu_ms_per_unit(before, after, requests, "user_service.web", "postgres")
            rounds.append(
                {
                    "requests_per_s": round(requests / (after.at - before.at), 1),
                    "cpu_ms_per_request": round(server, 3),
                }
            )
    client_rounds = await asyncio.to_thread(client_floor, customers[0], requests)
    per_request = min(r["cpu_ms_per_request"] for r in rounds)
    return {
        "requests": requests,
        "rounds": rounds,
        "requests_per_s": max(r["requests_per_s"] for r in rounds),
        "cpu_ms_per_request": per_request,
        "client_rounds_ms_per_request": client_rounds,
        "client_ms_per_request": min(client_rounds),
        "floor_ms_per_order": {
            mode: round(count * per_request, 2) for mode, count in DJANGO_REQUESTS_PER_ORDER.items()
        },
    }


# One SQL statement through Django's ORM, in loops in a user_service shell: a read
# by primary key returning a model, the same returning one value, the same
# through a raw cursor (for reference: the ORM's own share), or (MODE "write") an
# UPDATE that changes nothing. MODE, WARM, COUNT and WRITES_PER_COMMIT come first
# (`_shell_statements`). Prints each loop's CPU as JSON.
STATEMENT_FLOOR_CODE = """
import json, resource
from django.db import connection, transaction
from django.db.models import F
from users.models import User

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

def model():
    User.objects.get(pk=pk)

def value():
    User.objects.values_list("full_name", flat=True).get(pk=pk)

def raw():
    with connection.cursor() as cursor:
        cursor.execute(SQL, PARAMS)
        cursor.fetchone()

def write():
    # Updates that change nothing (full_name = full_name), committed together.
    with transaction.atomic():
        for _ in range(WRITES_PER_COMMIT):
            User.objects.filter(pk=pk).update(full_name=F("full_name"))

pk = User.objects.order_by("pk").values_list("pk", flat=True).first()
SQL, PARAMS = User.objects.filter(pk=pk).query.sql_with_params()
figures = {}
if MODE == "read":
    loops = (("model", model, COUNT), ("value", value, COUNT), ("raw", raw, COUNT))
else:
    loops = (("write", write, COUNT // WRITES_PER_COMMIT),)
for name, statement, count in loops:
    for _ in range(WARM):
        statement()
    started = cpu()
    for _ in range(count):
        statement()
    figures[name] = cpu() - started
print(json.dumps(figures))
"""
# A write's floor: an UPDATE through the ORM, WRITES_PER_COMMIT to a transaction
# (an order's transactions commit every two or three statements: a commit shared
# by five writes keeps the figure a lower bound).
WRITES_PER_COMMIT = 5
STATEMENT_FLOOR_WARM_UP = 300


def _shell_statements(mode: str, statements: int) -> dict[str, float]:
    """One user_service shell running STATEMENT_FLOOR_CODE in `mode`: ms per
    statement of each loop, PostgreSQL's share included (its CPU over the shell's
    run / the statements the run executed)."""
    settings = (mode, STATEMENT_FLOOR_WARM_UP, statements, WRITES_PER_COMMIT)
    code = f"MODE, WARM, COUNT, WRITES_PER_COMMIT = {settings!r}\n{STATEMENT_FLOOR_CODE}"
    before = cpu_snapshot()
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "manage", "user_service", "shell", "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    after = cpu_snapshot()
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if mode == "read":
        run = 3 * (statements + STATEMENT_FLOOR_WARM_UP)
    else:
        run = statements + STATEMENT_FLOOR_WARM_UP * WRITES_PER_COMMIT
    postgres_ms = cpu_ms_per_unit(before, after, run, "postgres")
    result = {name: 1000 * seconds / statements + postgres_ms for name, seconds in figures.items()}
    return {**result, "postgres": postgres_ms}


def statement_floor(statements: int) -> dict[str, Any]:
    """CPU of the cheapest SQL statement through Django's ORM, measured now: the
    cheapest of a read by primary key returning a model, the same returning one
    value, and an UPDATE committed every WRITES_PER_COMMIT, each the cheapest of
    FLOOR_ROUNDS shells. Python's side from getrusage of the shell's own loop,
    PostgreSQL's from its CPU over the shell's run. The same read through a raw
    cursor shows what the ORM itself costs per statement."""
    reads = [_shell_statements("read", statements) for _ in range(FLOOR_ROUNDS)]
    writes = [_shell_statements("write", statements) for _ in range(FLOOR_ROUNDS)]
    kinds = {
        "read_model": min(r["model"] for r in reads),
        "read_value": min(r["value"] for r in reads),
        "write": min(r["write"] for r in writes),
    }
    return {
        "statements": statements,
        "rounds": [{k: round(v, 3) for k, v in r.items()} for r in reads + writes],
        "cpu_ms_by_kind": {k: round(v, 3) for k, v in kinds.items()},
        "cpu_ms_per_statement": round(min(kinds.values()), 3),
        "raw_cursor_cpu_ms_per_statement": round(min(r["raw"] for r in reads), 3),
    }


# A Celery hand-off with nothing to do: Celery's built-in `celery.accumulate`
# (registered in every app; returns its argument), sent to order_service's queue.
TASK_FLOOR_TASK = "celery.accumulate"
TASK_FLOOR_QUEUE = "order_service"
TASK_FLOOR_WORKER = "order_service.worker"
BROKER_URL = os.environ.get(
    "CELERY_BROKER_URL", f"redis://127.0.0.1:{os.environ.get('COMPTOIR_REDIS_PORT', '6380')}/0"
)


def _tasks_done(url: str) -> float:
    return sum(
        sample.value
        for sample in _samples(url)
        if sample.name == COUNTERS["celery_tasks"] and sample.labels.get("task") == TASK_FLOOR_TASK
    )


def task_floor(tasks: int, *, timeout_s: float = 120.0) -> dict[str, Any]:
    """CPU of the cheapest Celery hand-off, measured now, the cheapest of
    FLOOR_ROUNDS rounds: `tasks` no-op tasks sent to order_service's worker (acks
    late, the chassis' signals, as every task), the sender's CPU (this process)
    included, until the worker counted them all."""
    from celery import Celery

    worker_metrics = metrics_endpoints()[TASK_FLOOR_WORKER]
    app = Celery("bench-task-floor", broker=BROKER_URL)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    rounds: list[dict[str, Any]] = []
    for _ in range(FLOOR_ROUNDS):
        start = _tasks_done(worker_metrics)
        before = cpu_snapshot()
        with app.producer_or_acquire() as producer:
            for n in range(tasks):
                app.send_task(
                    TASK_FLOOR_TASK, args=(n,), queue=TASK_FLOOR_QUEUE, producer=producer, ignore_result=True
                )
        deadline = time.monotonic() + timeout_s
        while _tasks_done(worker_metrics) < start + tasks:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{TASK_FLOOR_WORKER} ran fewer than {tasks} {TASK_FLOOR_TASK} in {timeout_s:g} s"
                )
            time.sleep(0.5)
        after = cpu_snapshot()
        sender = loadgen_ms_per_unit(before, after, tasks)
        rounds.append(
            {
                "tasks_per_s": round(tasks / (after.at - before.at), 1),
                "cpu_ms_per_task": round(cpu_ms_per_unit(before, after, tasks) + sender, 3),
                "sender_ms_per_task": round(sender, 3),
                "by_process_ms_per_task": {
                    k: v for k, v in cpu_delta(before, after, tasks)["ms_per_order"].items() if v >= 0.01
                },
            }
        )
    cheapest = min(rounds, key=lambda r: r["cpu_ms_per_task"])
    return {
        "tasks": tasks,
        "rounds": [{k: v for k, v in r.items() if k != "by_process_ms_per_task"} for r in rounds],
        **cheapest,
    }


def handoff_floor(floors: dict[str, Any], handoffs: dict[str, float], statements: float) -> dict[str, Any]:
    """What an order's hand-offs cost at their floors, measured in this run: its
    Django requests at the request floor (one read each included) and, but for
    the POST, the calling service's client side; its other statements at the
    cheapest ORM statement's floor; its Celery tasks at the task floor. Events
    are costed by the events benchmark (`bench/run_all.py` adds them)."""
    request = floors["request"]["cpu_ms_per_request"]
    client = floors["request"]["client_ms_per_request"]
    statement = floors["statement"]["cpu_ms_per_statement"]
    task = floors["task"]["cpu_ms_per_task"]
    requests = handoffs["django_requests"]
    parts = {
        "django_requests": requests * request,
        # Every request but the POST is one service calling another (the POST's
        # caller, the gateway, is left out).
        "http_clients": max(0.0, requests - 1) * client,
        # The requests' own statements are in the request floor (a read each).
        "statements": max(0.0, statements - requests) * statement,
        "celery_tasks": handoffs["celery_tasks"] * task,
    }
    return {
        "ms_per_order": round(sum(parts.values()), 1),
        "parts_ms": {name: round(value, 2) for name, value in parts.items()},
    }


def summarize(runs: list[ModeRun]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for mode in dict.fromkeys(r.mode for r in runs):
        mine = [r for r in runs if r.mode == mode]
        cpu_names = mine[0].saturation["cpu"]["ms_per_order"].keys()
        summary[mode] = {
            "runs": len(mine),
            "confirmed_per_s": statistics.median(r.saturation["confirmed_per_s"] for r in mine),
            "accepted_per_s": statistics.median(r.saturation["accepted_per_s"] for r in mine),
            "platform_ms_per_order": statistics.median(
                r.saturation["cpu"]["platform_ms_per_order"] for r in mine
            ),
            "p50_ms": statistics.median(r.open_loop["confirmed_ms_p50"] for r in mine),
            "p99_ms": statistics.median(r.open_loop["confirmed_ms_p99"] for r in mine),
            "cpu_ms_per_order": {
                name: statistics.median(r.saturation["cpu"]["ms_per_order"].get(name, 0.0) for r in mine)
                for name in cpu_names
            },
            "statements_per_order": statistics.median(
                r.saturation["statements"]["total_per_order"] for r in mine
            ),
            "handoffs_per_order": {
                name: round(statistics.median(r.saturation["handoffs_per_order"][name] for r in mine), 2)
                for name in mine[0].saturation["handoffs_per_order"]
            },
            "statements_per_order_by_service": {
                name: statistics.median(r.saturation["statements"]["per_order"].get(name, 0.0) for r in mine)
                for name in mine[0].saturation["statements"]["per_order"]
            },
        }
    return summary


async def main_async(args: argparse.Namespace) -> int:
    connector = aiohttp.TCPConnector(limit=args.clients + 64)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(GATEWAY_URL, connector=connector, timeout=timeout) as session:
        api = Api(session)
        await api.setup_staff()
        customers = list(await asyncio.gather(*(api.new_customer("100000.00") for _ in range(args.clients))))
        products = list(await asyncio.gather(*(api.new_product(10_000_000) for _ in range(args.products))))
        setup = Setup(customers=customers, products=products)
        print(
            f"{len(customers)} customers (100000.00 EUR each), "
            f"{len(products)} products (stock 10^7, 1.00 EUR)"
        )
        floor: dict[str, Any] | None = None
        floors: dict[str, Any] = {}
        if args.floor_requests:
            print(f"request floor: {args.floor_requests} x GET /api/users/me/ straight to user_service")
            floor = floors["request"] = await request_floor(customers, requests=args.floor_requests)
            print(
                f"  {floor['cpu_ms_per_request']} ms CPU per request (user_service.web + postgres): "
                f"floor per order {floor['floor_ms_per_order']}"
            )
        if args.floor_statements:
            print(f"statement floor: {args.floor_statements} x reads and writes through Django's ORM")
            floors["statement"] = await asyncio.to_thread(statement_floor, args.floor_statements)
            print(
                f"  {floors['statement']['cpu_ms_per_statement']} ms CPU per statement, the cheapest of "
                f"{floors['statement']['cpu_ms_by_kind']} "
                f"(a read {floors['statement']['raw_cursor_cpu_ms_per_statement']} ms through a raw cursor)"
            )
        if args.floor_tasks:
            print(f"task floor: {args.floor_tasks} x {TASK_FLOOR_TASK} through {TASK_FLOOR_WORKER}")
            floors["task"] = await asyncio.to_thread(task_floor, args.floor_tasks)
            print(f"  {floors['task']['cpu_ms_per_task']} ms CPU per task (sender, Redis and worker)")
        runs: list[ModeRun] = []
        for mode in args.modes:
            print(f"switching order_service to SAGA_MODE={mode}")
            await asyncio.to_thread(switch_mode, mode)
            runs.append(await run_mode(api, setup, mode, args))
    if args.restore_mode:
        await asyncio.to_thread(switch_mode, args.restore_mode)
    summary = summarize(runs)
    if {"request", "statement", "task"} <= floors.keys():
        for figures in summary.values():
            figures["handoff_floor"] = handoff_floor(
                floors, figures["handoffs_per_order"], figures["statements_per_order"]
            )
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "argv": sys.argv,
                "args": vars(args),
                "runs": [asdict(r) for r in runs],
                "medians": summary,
                "request_floor": floor,
                "floors": floors,
            },
            indent=2,
        )
    )
    print(json.dumps(summary, indent=2))
    print(f"raw figures: {out.relative_to(REPO_ROOT)}")
    return 0


def _count(text: str) -> int:
    """A count on the command line: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: give 0 or more")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["orchestration", "choreography"],
        default=["orchestration", "choreography", "choreography", "orchestration"],
    )
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--products", type=int, default=8)
    parser.add_argument("--saturation-orders", type=int, default=3000)
    parser.add_argument("--saturation-seconds", type=float, default=60.0)
    parser.add_argument("--drain-seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument(
        "--extra-rates",
        type=float,
        nargs="*",
        default=[],
        help="more open-loop phases at these rates (e.g. below saturation), after the main one",
    )
    parser.add_argument("--open-seconds", type=float, default=20.0)
    parser.add_argument("--pause-seconds", type=float, default=3.0)
    parser.add_argument(
        "--floor-requests",
        type=_count,
        default=2000,
        help="requests of the minimal-Django-request floor, measured before the modes (0: skip)",
    )
    parser.add_argument(
        "--floor-statements",
        type=_count,
        default=5000,
        help="statements of the statement floor (through Django's ORM), before the modes (0: skip)",
    )
    parser.add_argument(
        "--floor-tasks",
        type=_count,
        default=2000,
        help="no-op Celery tasks of the task floor, before the modes (0: skip)",
    )
    parser.add_argument(
        "--restore-mode",
        choices=["orchestration", "choreography"],
        default="orchestration",
        help="SAGA_MODE to leave order_service in afterwards (the default mode)",
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
