"""Prometheus (Debian's package) and a trace backend, as devstack processes.

Prometheus scrapes every platform process that serves metrics: each web process
on its own port (`/metrics`), and the workers, relays and consumers on the
ports `_config.metrics_port` gives them. Its configuration is generated from
the Procfiles at each start, with the alerting rules of
`deploy/observability/prometheus/rules/`.

Traces: Jaeger v2 when `make traces-backend` built it (`devstack/jaeger.sh`,
cached in `.devstack/tools/bin/jaeger`), with in-memory
storage, OTLP/HTTP on $COMPTOIR_OTLP_HTTP_PORT (4318), OTLP/gRPC on
$COMPTOIR_OTLP_GRPC_PORT (4317) and the query API on $COMPTOIR_TRACES_UI_PORT
(16686); otherwise `devstack.otlp_sink`, a small OTLP/HTTP-only receiver that
keeps spans in a bounded SQLite file and answers the same Jaeger query API (the
platform's processes export OTLP/HTTP, so either backend receives them). Both keep at most
$COMPTOIR_TRACES_MAX_TRACES traces, so a benchmark's spans cannot make the next
start slow; the sink also drops traces older than $COMPTOIR_TRACES_MAX_AGE_S
and keeps its file under $COMPTOIR_TRACES_MAX_BYTES.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from ._config import HOST, PORTS, ROOT, STATE_DIR
from ._process import ManagedProcess

RULES_DIR = ROOT / "deploy" / "observability" / "prometheus" / "rules"
JAEGER_BIN = STATE_DIR / "tools" / "bin" / "jaeger"
SCRAPE_INTERVAL = "5s"
# The trace backend's bounds, with the defaults of devstack/otlp_sink.py (a test checks they agree).
TRACE_BOUNDS = {
    "COMPTOIR_TRACES_MAX_AGE_S": 3600,
    "COMPTOIR_TRACES_MAX_TRACES": 50_000,
    "COMPTOIR_TRACES_MAX_BYTES": 256 * 1024 * 1024,
}


def trace_bound(name: str) -> int:
    """One of `TRACE_BOUNDS`, from its environment variable when set."""
    raw = os.environ.get(name, str(TRACE_BOUNDS[name]))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise SystemExit(f"devstack: {name}={raw!r} is not a positive whole number")
    return value


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
        return bool(response.status == 200)


def prometheus_config() -> Path:
    """Writes the scrape configuration for every process of every service."""
    from . import _platform

    work = STATE_DIR / "prometheus"
    work.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, list[dict[str, object]]] = {}
    for service, process, target in _platform.scrape_targets():
        jobs.setdefault(service, []).append(
            {"targets": [target], "labels": {"service": service, "process": process}}
        )
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"{HOST}:{PORTS.prometheus}"]}]},
            *(
                {"job_name": service, "metrics_path": "/metrics", "static_configs": static}
                for service, static in jobs.items()
            ),
        ],
    }
    path = work / "prometheus.yml"
    # JSON is YAML: no YAML writer needed.
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _prometheus_bin() -> str:
    # Debian's package (devstack/install-system-packages.sh installs it).
    return shutil.which("prometheus") or "/usr/bin/prometheus"


def reload_prometheus() -> None:
    """Rewrites the scrape configuration and has a running Prometheus load it."""
    prometheus_config()
    request = urllib.request.Request(f"http://{HOST}:{PORTS.prometheus}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback only
            pass
    except OSError as error:
        print(f"devstack: prometheus did not reload its configuration: {error}", flush=True)


def prometheus_process() -> ManagedProcess:
    work = STATE_DIR / "prometheus"
    return ManagedProcess(
        name="prometheus",
        argv=[
            _prometheus_bin(),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={HOST}:{PORTS.prometheus}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        ready=lambda: _http_ok(f"http://{HOST}:{PORTS.prometheus}/-/ready"),
        prepare=prometheus_config,
        ready_deadline_s=60,
    )


def jaeger_config() -> Path:
    work = STATE_DIR / "jaeger"
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {
                "logs": {"level": "warn"},
                "metrics": {"level": "none"},
            },
        },
        "extensions": {
            "healthcheckv2": {
                "use_v2": True,
                "http": {"endpoint": f"{HOST}:{PORTS.traces_ui + 1000}"},
            },
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": f"{HOST}:{PORTS.traces_ui}"},
                "grpc": {"endpoint": f"{HOST}:{PORTS.traces_ui - 1}"},
            },
            # The same bound as the OTLP sink's (Jaeger's memory store has no age bound).
            "jaeger_storage": {
                "backends": {
                    "memstore": {"memory": {"max_traces": trace_bound("COMPTOIR_TRACES_MAX_TRACES")}}
                }
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"{HOST}:{PORTS.otlp_grpc}"},
                    "http": {"endpoint": f"{HOST}:{PORTS.otlp_http}"},
                }
            }
        },
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }
    path = work / "config.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def trace_store() -> Path:
    """The OTLP sink's SQLite file."""
    return STATE_DIR / "traces" / "spans.sqlite"


def prepare_trace_store() -> None:
    """Removes the older sink's JSON-lines file: it is never read again and only took room."""
    legacy = trace_store().with_name("spans.jsonl")
    if legacy.exists():
        size = legacy.stat().st_size
        legacy.unlink()
        print(f"devstack: removed {legacy} ({size / 2**20:.0f} MiB of spans in the older format)", flush=True)


def traces_process() -> ManagedProcess:
    """Jaeger when it was built, else the OTLP sink; both answer /api/traces/<id> on the UI port."""
    ready_url = f"http://{HOST}:{PORTS.traces_ui}/api/services"
    if JAEGER_BIN.exists():
        config = STATE_DIR / "jaeger" / "config.yaml"
        return ManagedProcess(
            name="traces",
            argv=[str(JAEGER_BIN), f"--config={config}"],
            ready=lambda: _http_ok(ready_url),
            prepare=jaeger_config,
            ready_deadline_s=60,
        )
    return ManagedProcess(
        name="traces",
        argv=[
            sys.executable,
            "-m",
            "devstack.otlp_sink",
            "--host",
            HOST,
            "--otlp-port",
            str(PORTS.otlp_http),
            "--query-port",
            str(PORTS.traces_ui),
            "--store",
            str(trace_store()),
            "--max-age-s",
            str(trace_bound("COMPTOIR_TRACES_MAX_AGE_S")),
            "--max-traces",
            str(trace_bound("COMPTOIR_TRACES_MAX_TRACES")),
            "--max-bytes",
            str(trace_bound("COMPTOIR_TRACES_MAX_BYTES")),
        ],
        ready=lambda: _http_ok(ready_url),
        prepare=prepare_trace_store,
        cwd=ROOT,
        ready_deadline_s=30,
    )


def traces_backend_name() -> str:
    return "Jaeger v2" if JAEGER_BIN.exists() else "OTLP sink (devstack.otlp_sink)"
