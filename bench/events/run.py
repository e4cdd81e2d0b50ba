"""Event backbone benchmark: the full path against its two floors, side by side in one run.

  A  full path: business transactions (order row + publish_event) -> outbox ->
     outbox_relay -> Kafka -> consume_events (inbox + effect row)
  B  storage floor: per event, the two single-row insert + commit pairs the outbox
     and the inbox must at least cost (one ~500-byte row, one inbox row), psycopg
  C  broker floor: raw confluent-kafka idempotent produce -> consume, same key and value

Throughput rounds are interleaved (A B C, C B A, ...) with the same number of
writer processes for A and B; latency is measured open loop at a fixed rate
(commit of the business transaction -> commit of the handler's transaction).

    .venv/bin/python bench/events/run.py [--events 5000] [--rounds 3] [--writers 4]
        [--rate 200] [--latency-seconds 15]

Needs the devstack's PostgreSQL and Kafka (`python -m devstack up --infra`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PG_PORT = int(os.environ.get("COMPTOIR_PG_PORT", "5433"))
KAFKA = os.environ.get(
    "KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{os.environ.get('COMPTOIR_KAFKA_PORT', '9092')}"
)
DB_NAME = "bench_events"
DSN = f"postgres://comptoir_chassis:comptoir_chassis@127.0.0.1:{PG_PORT}/{DB_NAME}"
LINES = [
    {"product_id": "prod-0001-espresso-beans-1kg", "quantity": 2, "unit_price": "18.90"},
    {"product_id": "prod-0002-grinder-burr-steel", "quantity": 1, "unit_price": "129.00"},
    {"product_id": "prod-0003-milk-jug-600ml", "quantity": 1, "unit_price": "24.50"},
]


def payload(n: int) -> dict[str, Any]:
    return {
        "order_id": f"o-{n}",
        "user_id": f"user-{n % 97}",
        "lines": LINES,
        "amount": "191.30",
        "currency": "EUR",
    }


def env(topic: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT / "libs" / "comptoir" / "src")]),
        "DJANGO_SETTINGS_MODULE": "benchproject.settings",
        "DATABASE_URL": DSN,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "BENCH_TOPIC": topic,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def infrastructure_cpu_s() -> dict[str, float]:
    """CPU seconds so far of the devstack's PostgreSQL (backends included) and Kafka, by the
    saga benchmark's accounting (process group, descendants, reaped children)."""
    spec = importlib.util.spec_from_file_location("saga_bench", HERE.parent / "saga" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    saga_bench = sys.modules.get(spec.name)
    if saga_bench is None:
        saga_bench = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = saga_bench  # its dataclasses look their module up
        spec.loader.exec_module(saga_bench)
    per_process = saga_bench.cpu_snapshot().per_process
    return {name: per_process.get(name, 0.0) for name in ("postgres", "kafka")}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.02) -> float:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(interval_s)
    return time.time()


# ---------------------------------------------------------------- worker roles


def await_go() -> None:
    """Says it is ready (set up, connected) and waits for the driver's go, so start-up is not timed."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


def role_publisher(args: argparse.Namespace) -> None:
    """Business transactions: an order row and its order.created event, one transaction each."""
    import django

    django.setup()
    from benchapp.models import BenchOrder
    from django.db import connection, transaction

    from comptoir.events import publish_event

    connection.ensure_connection()
    commits: list[tuple[str, float]] = []
    interval = 1.0 / args.rate if args.rate else 0.0
    await_go()
    began = time.monotonic()
    cpu_before = time.process_time()
    for i in range(args.count):
        n = args.first + i
        if interval:
            scheduled = began + i * interval
            while time.monotonic() < scheduled:
                time.sleep(0.0005)
        with transaction.atomic():
            order = BenchOrder.objects.create(user_id=f"user-{n % 97}", amount="191.30")
            publish_event(
                "order.created", aggregate_id=f"order-{n % 50}", payload=payload(n) | {"order_id": f"o-{n}"}
            )
            del order
        if interval:
            commits.append((f"o-{n}", time.monotonic()))
    print(json.dumps({"commits": commits, "cpu_s": time.process_time() - cpu_before}))


def role_floor_writer(args: argparse.Namespace) -> None:
    """Per event: insert + commit of a ~500-byte outbox-like row, then of an inbox-like row."""
    import psycopg

    value = json.dumps({"event_type": "order.created", "payload": payload(0), "pad": "x" * 150})
    with psycopg.connect(DSN.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        await_go()
        for _ in range(args.count):
            event_id = uuid.uuid4()
            conn.execute(
                "INSERT INTO bench_floor_outbox (event_id, value) VALUES (%s, %s)", [event_id, value]
            )
            conn.execute(
                "INSERT INTO bench_floor_inbox (consumer, event_id) VALUES (%s, %s)", ["bench", event_id]
            )


def role_kafka_consumer(args: argparse.Namespace) -> None:
    """Consumes `count` messages of the topic, committing per batch; prints when the last arrived."""
    from confluent_kafka import Consumer

    from comptoir import kafka_client_config

    consumer = Consumer(
        {
            **kafka_client_config(KAFKA),
            "group.id": f"bench.floor-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe([args.topic])
    seen, deadline = 0, time.monotonic() + 300
    print("ready", flush=True)
    while seen < args.count and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=500, timeout=0.2)
        valid = [m for m in batch if m.error() is None]
        seen += len(valid)
        if valid:
            consumer.commit(asynchronous=False)
    print(json.dumps({"done_at": time.time(), "seen": seen}), flush=True)
    consumer.close()


# ---------------------------------------------------------------- driver


def _ensure_database() -> None:
    """Creates bench_events (owned by the chassis' role, which may create databases)."""
    import psycopg

    admin_dsn = DSN.replace("postgres://", "postgresql://").rsplit("/", 1)[0] + "/comptoir_chassis"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone() is None:
            print(f"== create database {DB_NAME}", flush=True)
            admin.execute(f"CREATE DATABASE {DB_NAME}")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import psycopg

        self.args = args
        _ensure_database()
        self.db = psycopg.connect(DSN.replace("postgres://", "postgresql://"), autocommit=True)
        self.results: dict[str, list[float]] = {"full": [], "storage": [], "broker": []}
        self.cpu: dict[str, list[float]] = {
            "publishers": [],
            "relay": [],
            "consumer": [],
            "postgres": [],
            "kafka": [],
        }
        # Events per second at which each stage of the full path finished (published, relayed, handled).
        self.stages: dict[str, list[float]] = {}

    def prepare(self) -> None:
        print("== migrate bench_events", flush=True)
        self.run_django(["migrate", "--noinput", "-v", "0"], topic="bench.unused")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor_outbox (id bigserial PRIMARY KEY, "
            "event_id uuid UNIQUE NOT NULL, value text NOT NULL, created_at timestamptz DEFAULT now())"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor_inbox (consumer text, event_id uuid, "
            "handled_at timestamptz DEFAULT now(), PRIMARY KEY (consumer, event_id))"
        )

    def run_django(self, command: list[str], *, topic: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", *command], cwd=HERE, env=env(topic), check=True, timeout=300
        )

    def spawn(self, command: list[str], topic: str, **extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "django", *command], cwd=HERE, env=env(topic, **extra))

    def role(self, role: str, topic: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(Path(__file__)), "--role", role, *extra],
            cwd=HERE,
            env=env(topic),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def go(self, workers: list[subprocess.Popen[str]]) -> float:
        """Waits until every worker is ready, then starts them all; returns the start time."""
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"bench: worker said {line!r}")
        started = time.time()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        return started

    def count(self, table: str) -> int:
        row = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - our tables
        return int(row[0]) if row else 0

    def clean(self) -> None:
        for table in (
            "benchapp_ordereffect",
            "benchapp_benchorder",
            "comptoir_events_outboxmessage",
            "comptoir_events_inboxmessage",
            "bench_floor_outbox",
            "bench_floor_inbox",
        ):
            self.db.execute(f"TRUNCATE {table}")

    def start_pipeline(
        self, topic: str, **extra: str
    ) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        relay = self.spawn(["outbox_relay"], topic, **extra)
        consumer = self.spawn(["consume_events"], topic, **extra)
        # Warm-up: one event through, so topics exist and the group has joined.
        warm = self.role("publisher", topic, "--count", "1", "--first", "999999999")
        self.go([warm])
        warm.communicate(timeout=120)
        wait_until(lambda: self.count("benchapp_ordereffect") >= 1, 120, "the warm-up event")
        return relay, consumer

    def stop(self, *processes: subprocess.Popen[bytes]) -> None:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)

    def full_path(self) -> None:
        n, writers = self.args.events, self.args.writers
        self.clean()
        topic = f"bench.order-created-{uuid.uuid4().hex[:8]}"
        relay, consumer = self.start_pipeline(topic)
        cpu_before = {"relay": cpu_seconds(relay.pid), "consumer": cpu_seconds(consumer.pid)}
        infrastructure_before = infrastructure_cpu_s()
        share = n // writers
        publishers = [
            self.role("publisher", topic, "--count", str(share), "--first", str(w * share))
            for w in range(writers)
        ]
        start_at = self.go(publishers)
        stages = self.watch_stages(share * writers, start_at)
        done = stages["handled"]
        publisher_cpu_s = 0.0
        for p in publishers:
            out, _ = p.communicate(timeout=60)
            publisher_cpu_s += json.loads(out.strip().splitlines()[-1])["cpu_s"]
        # The business transactions' own CPU (order row + publish_event), all writers together.
        self.cpu["publishers"].append(publisher_cpu_s * 1000 / (share * writers))
        for name, seconds in infrastructure_cpu_s().items():
            self.cpu[name].append((seconds - infrastructure_before[name]) * 1000 / (share * writers))
        self.cpu["relay"].append((cpu_seconds(relay.pid) - cpu_before["relay"]) * 1000 / (share * writers))
        self.cpu["consumer"].append(
            (cpu_seconds(consumer.pid) - cpu_before["consumer"]) * 1000 / (share * writers)
        )
        self.stop(relay, consumer)
        rate = share * writers / (done - start_at)
        self.results["full"].append(rate)
        for stage, at in stages.items():
            self.stages.setdefault(stage, []).append(share * writers / (at - start_at))
        cpu = ", ".join(f"{name} {values[-1]:.2f}" for name, values in self.cpu.items())
        by_stage = ", ".join(f"{stage} {values[-1]:.0f}/s" for stage, values in self.stages.items())
        print(f"   A full path      {rate:8.0f} events/s  (CPU ms per event: {cpu})", flush=True)
        print(f"     each stage done at: {by_stage}", flush=True)

    def watch_stages(self, n: int, start_at: float) -> dict[str, float]:
        """When the last event was committed by its publisher, marked sent by the relay, handled."""
        stages: dict[str, float] = {}
        deadline = time.monotonic() + 600
        queries = {
            "published": "SELECT count(*) FROM comptoir_events_outboxmessage",
            "relayed": "SELECT count(*) FROM comptoir_events_outboxmessage WHERE sent_at IS NOT NULL",
            "handled": "SELECT count(*) FROM benchapp_ordereffect",
        }
        while "handled" not in stages:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: the full path did not finish in 600 s ({stages})")
            for stage, query in queries.items():
                if stage not in stages:
                    row = self.db.execute(query).fetchone()
                    if row is not None and int(row[0]) >= n + 1:  # + the warm-up event
                        stages[stage] = time.time()
            time.sleep(0.02)
        return stages

    def storage_floor(self) -> None:
        n, writers = self.args.events, self.args.writers
        self.clean()
        share = n // writers
        procs = [self.role("floor-writer", "bench.unused", "--count", str(share)) for _ in range(writers)]
        start_at = self.go(procs)
        for p in procs:
            p.communicate(timeout=600)
        done = time.time()
        assert self.count("bench_floor_inbox") == share * writers
        rate = share * writers / (done - start_at)
        self.results["storage"].append(rate)
        print(f"   B storage floor  {rate:8.0f} events/s", flush=True)

    def broker_floor(self) -> None:
        from confluent_kafka import Producer

        from comptoir import TopicSpec, ensure_topics, kafka_client_config

        n = self.args.events
        topic = f"bench.raw-{uuid.uuid4().hex[:8]}"
        ensure_topics([TopicSpec(topic, partitions=3)], bootstrap_servers=KAFKA)
        consumer = self.role("kafka-consumer", topic, "--topic", topic, "--count", str(n))
        assert consumer.stdout is not None
        assert consumer.stdout.readline().strip() == "ready"
        producer = Producer(
            {**kafka_client_config(KAFKA), "enable.idempotence": True, "acks": "all", "linger.ms": 2}
        )
        value = json.dumps({"event_type": "order.created", "payload": payload(0), "pad": "x" * 150}).encode()
        time.sleep(2.0)  # let the consumer join its group before the clock starts
        start_at = time.time()
        for i in range(n):
            while True:
                try:
                    producer.produce(topic, key=f"order-{i % 50}".encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush(60)
        out, _ = consumer.communicate(timeout=300)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["seen"] == n, result
        rate = n / (result["done_at"] - start_at)
        self.results["broker"].append(rate)
        print(f"   C broker floor   {rate:8.0f} events/s", flush=True)

    def latency(self) -> dict[str, float]:
        rate, seconds = self.args.rate, self.args.latency_seconds
        self.clean()
        topic = f"bench.order-created-{uuid.uuid4().hex[:8]}"
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.5)
        port = receiver.getsockname()[1]
        handled: dict[str, float] = {}
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                try:
                    data = receiver.recv(200)
                except TimeoutError:
                    continue
                order_id, at = data.decode().split()
                handled[order_id] = float(at)

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        relay, consumer = self.start_pipeline(topic, BENCH_UDP_PORT=str(port))
        count = int(rate * seconds)
        publisher = self.role(
            "publisher",
            topic,
            "--count",
            str(count),
            "--first",
            "0",
            "--rate",
            str(rate),
        )
        self.go([publisher])
        out, _ = publisher.communicate(timeout=seconds + 120)
        commits = dict(json.loads(out.strip().splitlines()[-1])["commits"])
        wait_until(lambda: all(k in handled for k in commits), 60, "every latency probe", interval_s=0.1)
        stop.set()
        thread.join(timeout=5)
        self.stop(relay, consumer)
        skip = int(rate)  # the first second is warm-up
        latencies = sorted((handled[k] - commits[k]) * 1000 for k in list(commits)[skip:])
        return {
            "count": len(latencies),
            "p50": latencies[len(latencies) // 2],
            "p90": latencies[int(len(latencies) * 0.9)],
            "p99": latencies[int(len(latencies) * 0.99)],
            "max": latencies[-1],
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="driver")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--latency-rate", type=float, default=200.0)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--topic", default="")
    args = parser.parse_args()
    if args.role == "publisher":
        return role_publisher(args)
    if args.role == "floor-writer":
        return role_floor_writer(args)
    if args.role == "kafka-consumer":
        return role_kafka_consumer(args)

    bench = Bench(args)
    bench.prepare()
    steps = {"full": bench.full_path, "storage": bench.storage_floor, "broker": bench.broker_floor}
    orders = [["full", "storage", "broker"], ["broker", "storage", "full"]]
    for round_number in range(args.rounds):
        print(f"== round {round_number + 1} (events={args.events}, writers={args.writers})", flush=True)
        for name in orders[round_number % 2]:
            steps[name]()
    args.rate = args.latency_rate
    print(f"== latency, open loop at {args.rate:.0f} events/s for {args.latency_seconds:.0f} s", flush=True)
    lat = bench.latency()
    r = bench.results
    ratios_storage = [f / s for f, s in zip(r["full"], r["storage"], strict=True)]
    ratios_broker = [f / b for f, b in zip(r["full"], r["broker"], strict=True)]
    summary = {
        "events_per_s": {k: [round(v) for v in vs] for k, vs in r.items()},
        "median_events_per_s": {k: round(statistics.median(vs)) for k, vs in r.items()},
        "full_over_storage": [round(x, 2) for x in ratios_storage],
        "full_over_broker": [round(x, 3) for x in ratios_broker],
        "median_full_over_storage": round(statistics.median(ratios_storage), 2),
        "median_full_over_broker": round(statistics.median(ratios_broker), 3),
        "cpu_ms_per_event": {k: [round(v, 3) for v in vs] for k, vs in bench.cpu.items()},
        "full_path_stage_events_per_s": {k: [round(v) for v in vs] for k, vs in bench.stages.items()},
        # What the cores allow the full path at its measured CPU per event (every process on
        # its path together: publishers, relay, consumer, PostgreSQL, Kafka): its bound.
        "full_path_cpu_ms_per_event": round(_full_path_cpu_ms(bench.cpu), 3),
        "full_path_cpu_ceiling_events_per_s": round(
            (os.cpu_count() or 1) * 1000 / _full_path_cpu_ms(bench.cpu)
        ),
        "latency_ms": {k: round(v, 2) for k, v in lat.items()},
        "envelope_bytes": len(_sample_envelope_size()),
    }
    print(json.dumps(summary, indent=2))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"argv": sys.argv, "summary": summary}, indent=2))
    print(f"raw figures: {out.relative_to(ROOT)}")


def _full_path_cpu_ms(cpu: dict[str, list[float]]) -> float:
    """Median over the rounds of the full path's CPU per event, all its processes together."""
    return sum(statistics.median(values) for values in cpu.values() if values) or float("nan")


def _sample_envelope_size() -> bytes:
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.created",
        "schema_version": 1,
        "occurred_at": "2026-11-24T13:00:00.000000+00:00",
        "producer": "bench_events",
        "aggregate_id": "order-17",
        "correlation_id": str(uuid.uuid4()),
        "saga_id": None,
        "traceparent": None,
        "payload": payload(12345),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


if __name__ == "__main__":
    main()
