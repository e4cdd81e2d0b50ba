"""Where the devstack keeps its state and which loopback ports it uses.

Every port can be moved with an environment variable (see the README's table);
the defaults keep clear of a machine's own PostgreSQL (5432) and Redis (6379).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from comptoir import ports

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"devstack: {name}={raw!r} is not a port number") from None


@dataclass(frozen=True)
class Ports:
    postgres: int
    redis: int
    kafka: int
    kafka_controller: int
    smtp: int
    prometheus: int
    traces_ui: int
    otlp_http: int
    otlp_grpc: int
    metrics_base: int


PORTS = Ports(
    postgres=_port("COMPTOIR_PG_PORT", 5433),
    redis=_port("COMPTOIR_REDIS_PORT", 6380),
    kafka=_port("COMPTOIR_KAFKA_PORT", 9092),
    kafka_controller=_port("COMPTOIR_KAFKA_CONTROLLER_PORT", 9093),
    smtp=_port("COMPTOIR_SMTP_PORT", 1025),
    prometheus=_port("COMPTOIR_PROMETHEUS_PORT", 9090),
    traces_ui=_port("COMPTOIR_TRACES_UI_PORT", 16686),
    otlp_http=_port("COMPTOIR_OTLP_HTTP_PORT", 4318),
    otlp_grpc=_port("COMPTOIR_OTLP_GRPC_PORT", 4317),
    # Processes without a web server (worker, relay, consumer) serve /metrics on
    # base + 10 x the service's rank + the kind's rank (see `metrics_port`).
    metrics_base=_port("COMPTOIR_METRICS_PORT_BASE", 9400),
)


def _broker_count() -> int:
    raw = os.environ.get("COMPTOIR_KAFKA_BROKERS", "1")
    if raw not in ("1", "3"):
        raise SystemExit(f"devstack: COMPTOIR_KAFKA_BROKERS={raw!r}: 1 (the default) or 3 (a KRaft cluster)")
    return int(raw)


# COMPTOIR_KAFKA_BROKERS=3: a cluster of three broker+controller nodes instead of the
# single broker, topics replicated three times, `min.insync.replicas` 2 (the
# deployment's HA profile). Node 1 listens on the single broker's ports.
KAFKA_BROKERS = _broker_count()


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int


def kafka_nodes(brokers: int = KAFKA_BROKERS) -> list[KafkaNode]:
    """The KRaft nodes of a layout (1 or 3 brokers), each with its client and controller port."""
    nodes = [KafkaNode(1, PORTS.kafka, PORTS.kafka_controller)]
    if brokers == 3:
        nodes += [
            KafkaNode(
                number,
                _port(f"COMPTOIR_KAFKA_PORT_{number}", 9090 + 2 * number),
                _port(f"COMPTOIR_KAFKA_CONTROLLER_PORT_{number}", 9091 + 2 * number),
            )
            for number in (2, 3)
        ]
    return nodes


def kafka_bootstrap() -> str:
    """Every broker of the layout: clients keep working while one of them is down."""
    return ",".join(f"{HOST}:{node.port}" for node in kafka_nodes())


def kafka_env() -> dict[str, str]:
    """Where Kafka is, and how far topics are replicated (every process and test run)."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap()}
    if KAFKA_BROKERS > 1:
        env["COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR"] = str(KAFKA_BROKERS)
    return env


# The domain services, the gateway and the frontend, with the port their web process
# listens on: the chassis's port table (comptoir.ports), each movable with
# COMPTOIR_<NAME>_PORT.
SERVICE_PORTS: dict[str, int] = {
    name: _port(f"COMPTOIR_{name.upper()}_PORT", port) for name, port in ports.SERVICE_PORTS.items()
}

# Frontends: Django projects with no database, topics or demo data of their own;
# they reach the platform through the gateway only.
FRONTENDS = ("storefront",)

# One database (and one role of the same name) per service, plus one for the
# chassis library's own tests.
DATABASES = [name for name in SERVICE_PORTS if name != "api_gateway" and name not in FRONTENDS] + [
    "comptoir_chassis"
]

# Process kinds that serve their metrics on a port of their own (web processes serve /metrics).
METRICS_KINDS = ("worker", "relay", "consumer")


def metrics_port(service: str, kind: str) -> int | None:
    """The metrics port of `<service>.<kind>`, or None when it has none (beat; the
    services' web processes serve /metrics on their own port). The gateway's web
    process, the one public port, serves its metrics on base + 10 x its rank."""
    if service not in SERVICE_PORTS or service in FRONTENDS:
        return None
    rank = PORTS.metrics_base + 10 * list(SERVICE_PORTS).index(service)
    if service == "api_gateway" and kind == "web":
        return rank
    if kind not in METRICS_KINDS:
        return None
    return rank + 1 + METRICS_KINDS.index(kind)


STATE_DIR = Path(os.environ.get("COMPTOIR_DEVSTACK_DIR", str(ROOT / ".devstack")))
LOG_DIR = STATE_DIR / "logs"
RUN_DIR = STATE_DIR / "run"
CACHE_DIR = STATE_DIR / "cache"


def postgres_home() -> Path:
    """The PostgreSQL cluster's folder, which the `postgres` user must be able to reach.

    Inside `.devstack/` when every parent folder lets others through; otherwise (a
    checkout under a private folder) a folder in /var/tmp named after the checkout.
    """
    inside = STATE_DIR / "postgres"
    if all(os.stat(p).st_mode & 0o001 for p in [*STATE_DIR.parents, STATE_DIR] if p.exists()):
        return inside
    digest = hashlib.sha256(str(STATE_DIR).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"comptoir-postgres-{digest}"


def service_env() -> dict[str, str]:
    """The environment every platform process gets: where the infrastructure is."""
    env = {
        "COMPTOIR_PG_PORT": str(PORTS.postgres),
        "COMPTOIR_REDIS_PORT": str(PORTS.redis),
        "COMPTOIR_KAFKA_PORT": str(PORTS.kafka),
        "REDIS_URL": f"redis://{HOST}:{PORTS.redis}/0",
        **kafka_env(),
        "EMAIL_HOST": HOST,
        "EMAIL_PORT": str(PORTS.smtp),
        # Traces go to the local trace backend (Jaeger, or the OTLP sink).
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{PORTS.otlp_http}",
        # Relays' and consumers' heartbeats (`python -m comptoir.probe live`): this checkout's own.
        "COMPTOIR_HEARTBEAT_DIR": str(RUN_DIR),
        # order_service's reconciliation auditor (Celery beat): often, locally, so
        # comptoir_reconciliation_violations shows soon after `make up`.
        "RECONCILE_INTERVAL_S": "30",
    }
    for name, port in SERVICE_PORTS.items():
        env[f"{name.upper()}_URL"] = f"http://{HOST}:{port}"
    return env
