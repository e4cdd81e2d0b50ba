"""The chaos suite's harness: processes and infrastructure failed on purpose, a
bounded mixed load through the gateway, and the recovery check after each fault.

- `Devstack`: every platform process by its devstack name (`order_service.consumer`...),
  started, stopped, SIGKILLed through `python -m devstack`, with per-process
  environment overrides (the saga mode of order_service.web, short retry delays).
- `Supervisor`: what Kubernetes' restart policy does in production: a platform
  process that died (killed, or exited on its own) is started again through the
  devstack; its restarts are counted, so one that keeps dying shows as crash-looping.
- `Load`: orders placed through the gateway, bounded in count and time, in both
  saga modes (order_service.web is restarted with the other SAGA_MODE halfway),
  a mix that confirms, runs out of stock and lacks funds.
- `recover()`: waits (bounded) until every order is CONFIRMED or CANCELLED, every
  outbox row is published, every consumer group's lag is 0, no new dead letter,
  every process runs and stays up, then runs `manage.py reconcile`; the figures
  go into a `Result` row, written to the reports folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from platform_client import REPO_ROOT, TERMINAL, Customer, Platform

RUN_DIR = REPO_ROOT / ".devstack" / "run"
REPORTS = Path(os.environ.get("CHAOS_REPORTS", REPO_ROOT / ".devstack" / "test-reports"))
RESULTS = REPORTS / "chaos-results.jsonl"
TABLE = REPORTS / "chaos-results.txt"
CATALOG = REPO_ROOT / "contracts" / "events" / "catalog.json"
SAGA_MODES = ("orchestration", "choreography")
HOST = "127.0.0.1"
PRICE = Decimal("12.50")

# Bounds of every wait after a fault (seconds).
RECOVERY_S = float(os.environ.get("CHAOS_RECOVERY_S", "300"))
# After everything is green: every process must stay up this long (no crash loop).
STABLE_S = float(os.environ.get("CHAOS_STABLE_S", "10"))
# Once orders, events and processes settled, the auditor gets this long to come out clean.
RECONCILE_SETTLED_S = float(os.environ.get("CHAOS_RECONCILE_SETTLED_S", "90"))
# A process restarted this often during one scenario's recovery is crash-looping.
CRASH_LOOP_RESTARTS = 3


def log(message: str) -> None:
    print(f"[chaos {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# ------------------------------------------------------------------ processes


def procfile_commands(service: str) -> dict[str, str]:
    """`<service>.<kind>` -> its command, from the service's Procfile."""
    procfile = REPO_ROOT / "services" / service / "Procfile"
    if not procfile.exists():
        return {}
    commands = {}
    for line in procfile.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            kind, _, command = line.partition(":")
            commands[f"{service}.{kind.strip()}"] = command.strip()
    return commands


def relay_process(service: str) -> str | None:
    """The process that publishes the service's outbox: its relay, or its consumer when the
    relay runs as a thread of it (`consume_events --with-relay`); None when it has none."""
    for name, command in procfile_commands(service).items():
        if name == f"{service}.relay" or (
            name == f"{service}.consumer" and "--with-relay" in command.split()
        ):
            return name
    return None


def procfile_processes(service: str) -> list[str]:
    procfile = REPO_ROOT / "services" / service / "Procfile"
    if not procfile.exists():
        return []
    names = []
    for line in procfile.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            names.append(f"{service}.{line.split(':', 1)[0].strip()}")
    return names


def platform_services() -> list[str]:
    return sorted(p.name for p in (REPO_ROOT / "services").iterdir() if (p / "Procfile").exists())


def platform_processes() -> list[str]:
    return [name for service in platform_services() for name in procfile_processes(service)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError, PermissionError):
        return False
    return state != "Z"


class Devstack:
    """Platform processes and infrastructure through `python -m devstack`, one operation at a time."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Environment a process is (re)started with, by name: kept across restarts.
        self.overrides: dict[str, dict[str, str]] = {}

    def pid(self, name: str) -> int | None:
        try:
            pid = int((RUN_DIR / f"{name}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self, name: str) -> bool:
        return self.pid(name) is not None

    def _run(self, *args: str, name: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.overrides.get(name, {})}
        with self.lock:
            return subprocess.run(
                [sys.executable, "-m", "devstack", *args],
                cwd=REPO_ROOT,
                check=False,
                timeout=240,
                env=env,
                capture_output=True,
                text=True,
            )

    def start(self, name: str) -> bool:
        result = self._run("start", name, name=name)
        if result.returncode != 0:
            log(f"devstack start {name} failed: {(result.stdout + result.stderr).strip()[-800:]}")
        return result.returncode == 0

    def stop(self, name: str) -> None:
        result = self._run("stop", name, name=name)
        assert result.returncode == 0, f"devstack stop {name}: {result.stdout}{result.stderr}"

    def restart(self, name: str) -> bool:
        self.stop(name)
        return self.start(name)

    def kill(self, name: str) -> int | None:
        """SIGKILL the process and its whole group (a gunicorn master and its workers)."""
        pid = self.pid(name)
        if pid is None:
            return None
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid


@dataclass
class Supervisor:
    """Starts again every platform process found dead (as a container runtime would),
    except those held down on purpose; counts the restarts."""

    devstack: Devstack
    names: list[str] = field(default_factory=platform_processes)
    held: set[str] = field(default_factory=set)
    restarts: dict[str, list[float]] = field(default_factory=dict)
    failed_starts: dict[str, int] = field(default_factory=dict)
    _halt: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Supervisor:
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="chaos-supervisor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=300)

    def _loop(self) -> None:
        while not self._halt.wait(1.0):
            for name in self.names:
                if self._halt.is_set():
                    return
                if name in self.held or self.devstack.running(name):
                    continue
                self.restarts.setdefault(name, []).append(time.monotonic())
                log(f"supervisor: {name} is down, starting it")
                if not self.devstack.start(name):
                    self.failed_starts[name] = self.failed_starts.get(name, 0) + 1

    @contextmanager
    def holding(self, *names: str) -> Iterator[None]:
        """The named processes are left down while inside (the scenario stops them)."""
        self.held.update(names)
        try:
            yield
        finally:
            self.held.difference_update(names)

    def restarted_since(self, since: float) -> dict[str, int]:
        counts = {name: sum(1 for t in times if t >= since) for name, times in self.restarts.items()}
        return {name: count for name, count in counts.items() if count}

    def wait_running(self, name: str, *, timeout_s: float = 120) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.devstack.running(name):
                return True
            time.sleep(0.5)
        return False


# ----------------------------------------------------------------------- load


@dataclass
class Placed:
    order_id: int
    customer: Customer
    expected: str  # "confirm", "no_stock", "no_funds"
    mode: str


@dataclass
class Load:
    """Orders placed through the gateway: `count` of them spread over `duration_s`,
    half in each saga mode, by `workers` threads; each placement retried with the same
    Idempotency-Key while the platform is failing (bounded by `place_deadline_s`)."""

    platform: Platform
    devstack: Devstack
    count: int
    duration_s: float
    workers: int = 4
    modes: tuple[str, ...] = SAGA_MODES
    place_deadline_s: float = 180.0
    placed: list[Placed] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    key_fetch_refusals: int = 0
    # Set once the first order is placed: the fault is injected after it, under load.
    flowing: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # Each customer places one order at a time (concurrent sagas of one wallet would
        # race, which is correct but makes the expected outcome unknowable).
        self.rich = [self.platform.new_customer(balance=Decimal("100000.00")) for _ in range(self.workers)]
        self.poor = [self.platform.new_customer(balance=Decimal("5.00")) for _ in range(self.workers)]
        self.plenty = self.platform.new_product(stock=100000, price=PRICE)
        self.scarce = self.platform.new_product(stock=2, price=PRICE)

    def _kind(self, index: int) -> str:
        return ("confirm", "confirm", "confirm", "no_stock", "no_funds")[index % 5]

    def _place(self, index: int, worker: int, mode: str) -> None:
        kind = self._kind(index)
        customer = self.poor[worker] if kind == "no_funds" else self.rich[worker]
        lines = [(self.scarce, 5)] if kind == "no_stock" else [(self.plenty, 1)]
        key = f"chaos-{uuid.uuid4()}"
        end = time.monotonic() + self.place_deadline_s
        last = ""
        while time.monotonic() < end:
            try:
                response = self.platform.http.post(
                    "/api/orders/",
                    json={"lines": [{"product_id": p, "quantity": q} for p, q in lines]},
                    headers={**customer.headers, "Idempotency-Key": key},
                    timeout=30,
                )
                if response.status_code in (200, 201, 202):
                    body = response.json()
                    with self._lock:
                        self.placed.append(
                            Placed(int(body["id"]), customer, kind, str(body.get("saga_mode")))
                        )
                    self.flowing.set()
                    return
                last = f"{response.status_code} {response.text[:200]}"
                if response.status_code == 503 and "signing keys" in response.text:
                    # A process started while user_service is down cannot fetch the signing
                    # keys yet: the token is valid, the 503 lasts as long as the outage.
                    with self._lock:
                        self.key_fetch_refusals += 1
                    time.sleep(1.0)
                    continue
                if response.status_code < 500 and response.status_code not in (408, 409, 429):
                    break  # refused for good: a 4xx the platform means
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(1.0)
        with self._lock:
            self.refused.append(f"order #{index} ({kind}): {last}")

    def run(self, mode_switch: Callable[[str], None]) -> None:
        """Places every order (blocking); `mode_switch(mode)` is called before each mode's share."""
        share = -(-self.count // len(self.modes))
        began = time.monotonic()
        index = 0
        for mode in self.modes:
            mode_switch(mode)
            batch = list(range(index, min(index + share, self.count)))
            index += len(batch)
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                # One worker per customer pair: worker w places orders w, w+workers, ...
                def lane(worker: int, mine: list[int], mode: str = mode) -> None:
                    for i in mine:
                        due = began + self.duration_s * i / max(1, self.count)
                        time.sleep(max(0.0, due - time.monotonic()))
                        self._place(i, worker, mode)

                futures = [
                    pool.submit(lane, w, [i for j, i in enumerate(batch) if j % self.workers == w])
                    for w in range(self.workers)
                ]
                for future in futures:
                    future.result()

    def statuses(self) -> dict[int, dict[str, Any]]:
        """Every placed order's current state, read page by page per customer."""
        found: dict[int, dict[str, Any]] = {}
        for customer in {id(p.customer): p.customer for p in self.placed}.values():
            for order in self.platform.orders_of(customer):
                found[int(order["id"])] = order
        return found


# ----------------------------------------------------------------- inspection


def django_json(service: str, code: str) -> Any:
    """Runs `code` (which prints one JSON line last) in a service's Django shell."""
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "manage", service, "shell", "-c", code],
        cwd=REPO_ROOT,
        check=False,
        timeout=180,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{service} shell failed: {result.stderr[-600:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def unpublished_outbox() -> dict[str, int]:
    """Outbox rows not yet acknowledged by the broker, per service with a relay."""
    code = (
        "import json; from comptoir.events.models import OutboxMessage; "
        "print(json.dumps(OutboxMessage.objects.filter(sent_at__isnull=True).count()))"
    )
    services = [s for s in platform_services() if relay_process(s) is not None]
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        counts = list(pool.map(lambda s: int(django_json(s, code)), services))
    return dict(zip(services, counts, strict=True))


def _kafka_config() -> dict[str, Any]:
    config: dict[str, Any] = {
        # Every broker (the devstack exports them; a 3-broker cluster loses one on purpose).
        "bootstrap.servers": os.environ.get(
            "KAFKA_BOOTSTRAP_SERVERS", f"{HOST}:{os.environ.get('COMPTOIR_KAFKA_PORT', '9092')}"
        ),
        "log_level": 0,
        "socket.timeout.ms": 5000,
    }
    if os.environ.get("KAFKA_SASL_USERNAME"):
        config.update(
            {
                "security.protocol": os.environ.get("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
                "sasl.mechanism": os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                "sasl.username": os.environ["KAFKA_SASL_USERNAME"],
                "sasl.password": os.environ["KAFKA_SASL_PASSWORD"],
            }
        )
    return config


def consumer_groups() -> list[str]:
    """The platform's consumer groups: `<service>.events` of each service with a consumer."""
    return [f"{s}.events" for s in platform_services() if f"{s}.consumer" in procfile_processes(s)]


def consumer_lag() -> dict[str, int | None]:
    """Each platform group's total lag over the partitions its members hold (None: no member)."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_kafka_config())
    probe = Consumer({**_kafka_config(), "group.id": f"chaos-probe-{uuid.uuid4().hex[:8]}"})
    lags: dict[str, int | None] = {}
    try:
        for group in consumer_groups():
            description = admin.describe_consumer_groups([group])[group].result(timeout=15)
            assigned = [tp for member in description.members for tp in member.assignment.topic_partitions]
            if not assigned:
                lags[group] = None
                continue
            request = [ConsumerGroupTopicPartitions(group, assigned)]
            committed = admin.list_consumer_group_offsets(request)[group].result(timeout=15)
            total = 0
            for tp in committed.topic_partitions:
                low, high = probe.get_watermark_offsets(tp, timeout=10, cached=False)
                position = tp.offset if tp.offset >= 0 else low
                total += max(0, high - position)
            lags[group] = total
    finally:
        probe.close()
    return lags


def dlq_topics() -> list[str]:
    catalog = json.loads(CATALOG.read_text())
    names = set()
    for spec in catalog["event_types"].values():
        for consumer in spec["consumers"]:
            names.add(f"{consumer}.{spec['topic']}.dlq")
    return sorted(names)


def dead_letters() -> dict[str, int]:
    """Messages in every platform dead-letter topic (that exists)."""
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({**_kafka_config(), "group.id": f"chaos-probe-{uuid.uuid4().hex[:8]}"})
    counts: dict[str, int] = {}
    try:
        metadata = probe.list_topics(timeout=15)
        for topic in dlq_topics():
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                continue
            total = 0
            for partition in found.partitions:
                low, high = probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high - low
            counts[topic] = total
    finally:
        probe.close()
    return counts


def reconcile(since: datetime) -> tuple[int, str]:
    """`manage.py reconcile` over the scenario's rows: (violations, report); -1 if it could not ask."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack",
            "manage",
            "order_service",
            "reconcile",
            "--settle-seconds",
            "5",
            "--since",
            since.isoformat(),
        ],
        cwd=REPO_ROOT,
        check=False,
        timeout=180,
        capture_output=True,
        text=True,
    )
    match = re.search(r"reconciliation: (\d+) violation", result.stdout)
    if result.returncode == 2 or match is None:
        return -1, result.stdout + result.stderr
    return int(match.group(1)), result.stdout


# ---------------------------------------------------------------------- mails


def mails_per_order(platform: Platform, load: Load) -> dict[int, list[str]]:
    """order id -> the status of each order_confirmed/order_cancelled mail about it."""
    placed = {p.order_id for p in load.placed}
    found: dict[int, list[str]] = {}
    for customer in {id(p.customer): p.customer for p in load.placed}.values():
        for mail in platform.mails_to(customer.email):
            if (
                mail["template"] in ("order_confirmed", "order_cancelled")
                and int(mail["object_id"]) in placed
            ):
                found.setdefault(int(mail["object_id"]), []).append(str(mail["status"]))
    return found


def one_mail_each(platform: Platform, load: Load, *, timeout_s: float = 120) -> Callable[[Result], None]:
    """A recovery check: every finished order has exactly one mail, sent (missing ones are lost events)."""

    def check(result: Result) -> None:
        placed = {p.order_id for p in load.placed}
        finished = {i for i, order in load.statuses().items() if i in placed and order["status"] in TERMINAL}
        end = time.monotonic() + timeout_s
        while True:
            mails = mails_per_order(platform, load)
            if all(mails.get(i) == ["SENT"] for i in finished) or time.monotonic() > end:
                break
            time.sleep(3)
        wrong = {i: mails.get(i, []) for i in finished if mails.get(i) != ["SENT"]}
        if wrong:
            shape = Counter(tuple(statuses) for statuses in wrong.values())
            result.notes.append(
                f"orders without exactly one sent mail (mail statuses: orders): {dict(shape)}"
            )
            result.lost_events = max(result.lost_events, 0) + sum(
                1 for statuses in wrong.values() if not statuses
            )

    return check


# ------------------------------------------------------------------- results


@dataclass
class Result:
    scenario: str
    orders: int = 0
    confirmed: int = 0
    cancelled: int = 0
    violations: int = -1
    stuck: int = -1
    lost_events: int = -1
    recover_s: float = -1.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.violations == 0 and self.stuck == 0 and self.lost_events == 0 and not self.notes

    def write(self) -> None:
        REPORTS.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as out:
            out.write(json.dumps(asdict(self)) + "\n")


COLUMNS = ("scenario", "orders", "confirmed", "cancelled", "violations", "stuck", "lost events", "recover s")


def table(rows: list[dict[str, Any]]) -> str:
    """The result rows as a Markdown table (what `make chaos` prints and keeps)."""

    def cells(row: dict[str, Any]) -> list[str]:
        recover = row["recover_s"]
        return [
            str(row["scenario"]),
            str(row["orders"]),
            str(row["confirmed"]),
            str(row["cancelled"]),
            str(row["violations"]),
            str(row["stuck"]),
            str(row["lost_events"]),
            f"{recover:.0f}" if recover >= 0 else "n/a",
        ]

    body = [cells(row) for row in rows]
    widths = [max(len(c) for c in column) for column in zip(COLUMNS, *body, strict=True)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in body]
    notes = [f"- {row['scenario']}: {note}" for row in rows for note in row["notes"]]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def read_results() -> list[dict[str, Any]]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------- recovery


@dataclass
class Chaos:
    """One scenario's run: the load, the supervisor, the fault's end, the recovery check."""

    platform: Platform
    devstack: Devstack
    supervisor: Supervisor
    name: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    mode: str = "orchestration"
    expected_dead_letters: int = 0
    result: Result = field(init=False)

    def __post_init__(self) -> None:
        self.result = Result(self.name)
        self.dead_letters_before = sum(dead_letters().values())

    def set_mode(self, mode: str) -> None:
        """New orders are placed in `mode`: order_service.web restarted with SAGA_MODE."""
        if (
            mode == self.mode
            and self.devstack.overrides.get("order_service.web", {}).get("SAGA_MODE") == mode
        ):
            return
        self.devstack.overrides.setdefault("order_service.web", {})["SAGA_MODE"] = mode
        with self.supervisor.holding("order_service.web"):
            self.devstack.restart("order_service.web")
        self.mode = mode
        log(f"{self.name}: orders now placed in {mode}")

    def load(self, count: int, duration_s: float, workers: int = 4) -> Load:
        return Load(self.platform, self.devstack, count=count, duration_s=duration_s, workers=workers)

    def recover(
        self, load: Load, *, healed_at: float, extra: Callable[[Result], None] | None = None
    ) -> Result:
        """Waits until the platform settled (bounded), fills the result row and writes it
        (after `extra`, a scenario's own check, which may add notes and lost events)."""
        result = self.result
        end = healed_at + RECOVERY_S
        orders: dict[int, dict[str, Any]] = {}
        ids = {p.order_id for p in load.placed}
        for note in load.refused:
            result.notes.append(f"placement refused: {note}")
        if load.key_fetch_refusals:
            log(f"{self.name}: {load.key_fetch_refusals} refused (503: signing keys unavailable), retried")

        def poll(what: str, probe: Callable[[], bool], within_s: float | None = None) -> bool:
            until = end if within_s is None else min(end, time.monotonic() + within_s)
            while time.monotonic() < until:
                try:
                    if probe():
                        return True
                except Exception as error:  # noqa: BLE001 - the platform is still recovering
                    log(f"{self.name}: {what}: {type(error).__name__}: {str(error)[:200]}")
                time.sleep(2.0)
            return False

        def all_terminal() -> bool:
            orders.clear()
            orders.update({k: v for k, v in load.statuses().items() if k in ids})
            return all(orders.get(i, {}).get("status") in TERMINAL for i in ids)

        outbox: dict[str, int] = {}
        lag: dict[str, int | None] = {}
        letters = [0]

        def events_drained() -> bool:
            outbox.clear()
            outbox.update(unpublished_outbox())
            lag.clear()
            lag.update(consumer_lag())
            letters[0] = sum(dead_letters().values()) - self.dead_letters_before - self.expected_dead_letters
            return not any(outbox.values()) and all(v == 0 for v in lag.values())

        def processes_up() -> bool:
            return all(self.devstack.running(name) for name in self.supervisor.names)

        report = [""]

        def reconciled() -> bool:
            count, report[0] = reconcile(self.started)
            result.violations = count
            return count == 0

        settled = (
            poll("orders terminal", all_terminal)
            and poll("processes up", processes_up)
            and poll("events drained", events_drained)
            # Everything else settled: a violation still there after this long stays.
            and poll("reconciliation", reconciled, within_s=RECONCILE_SETTLED_S)
        )
        if settled:
            result.recover_s = round(time.monotonic() - healed_at, 1)
        # Stays up: no process dies again once the platform is green.
        watched = time.monotonic()
        time.sleep(STABLE_S)
        looping = {
            name: count
            for name, count in self.supervisor.restarted_since(healed_at).items()
            if count >= CRASH_LOOP_RESTARTS or self.supervisor.restarted_since(watched).get(name)
        }
        if looping:
            result.notes.append(f"crash-looping after the fault: {looping}")
        if self.supervisor.failed_starts:
            result.notes.append(f"failed starts: {self.supervisor.failed_starts}")
        result.orders = len(load.placed)
        result.confirmed = sum(1 for i in ids if orders.get(i, {}).get("status") == "CONFIRMED")
        result.cancelled = sum(1 for i in ids if orders.get(i, {}).get("status") == "CANCELLED")
        result.stuck = len(ids) - result.confirmed - result.cancelled
        if not outbox and not lag:
            try:
                events_drained()
            except Exception as error:  # noqa: BLE001 - reported as not drained
                result.notes.append(f"events not inspectable: {error}")
        lagging = sum(v if v is not None else 0 for v in lag.values())
        result.lost_events = sum(outbox.values()) + lagging + max(0, letters[0])
        if any(v is None for v in lag.values()):
            result.notes.append(
                f"consumer groups without a member: {[g for g, v in lag.items() if v is None]}"
            )
        if letters[0] > 0:
            result.notes.append(f"{letters[0]} unexpected dead letter(s)")
        if result.violations != 0:
            result.notes.append("reconciliation: " + _violation_summary(report[0]))
        wrong = _unexpected_outcomes(load, orders)
        if wrong:
            result.notes.append(f"unexpected outcomes: {wrong}")
        if extra is not None:
            try:
                extra(result)
            except Exception as error:  # noqa: BLE001 - the row is written whatever happens
                result.notes.append(f"scenario check failed: {type(error).__name__}: {error}")
        result.write()
        log(f"{self.name}: {asdict(result)}")
        return result


def _violation_summary(report: str) -> str:
    kinds = re.findall(r"^  (\w+)\s+([1-9]\d*)(?: \(first: (.*)\))?$", report, re.MULTILINE)
    if not kinds:
        return report.strip()[-400:]
    return "; ".join(f"{kind} {count} (first: {sample})" for kind, count, sample in kinds)


def _unexpected_outcomes(load: Load, orders: dict[int, dict[str, Any]]) -> list[str]:
    """Orders whose end contradicts what was asked: a no-stock order confirmed, a
    no-funds one confirmed (a confirmable one may be cancelled by a fault: not counted)."""
    wrong = []
    for placed in load.placed:
        order = orders.get(placed.order_id)
        if order is None or order["status"] not in TERMINAL:
            continue
        if placed.expected != "confirm" and order["status"] == "CONFIRMED":
            wrong.append(f"{placed.order_id} ({placed.expected}) CONFIRMED")
    return wrong[:10]
