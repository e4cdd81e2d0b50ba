"""`python -m devstack COMMAND`: the local platform on 127.0.0.1.

up [--infra]        start PostgreSQL, Redis, Kafka, SMTP, Prometheus, traces, then (unless --infra)
                    migrate, seed and start every service process
down                stop everything the devstack started
status              what runs, with pids and ports
start|stop|restart NAME   one process (e.g. kafka, order_service.web)
logs [NAME]         list the log files, or print the end of one
manage SERVICE ARGS `manage.py ARGS` with the service's own environment (`manage order_service reconcile`)
env                 the environment of a test run: infrastructure, secrets, the Kafka admin principal
kafka-acls          the broker ACLs derived from contracts/events/catalog.json (applied at `up`)

COMPTOIR_KAFKA_BROKERS=3 (environment, for every command): a KRaft cluster of three
broker+controller nodes (processes kafka-1, kafka-2, kafka-3; ports COMPTOIR_KAFKA_PORT,
COMPTOIR_KAFKA_PORT_2, COMPTOIR_KAFKA_PORT_3 and their _CONTROLLER_ ports) instead of the
single broker `kafka`: replication factor 3, min.insync.replicas 2, every client given all
three brokers. The default, 1, is the single broker; each layout keeps its own data.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from . import _infra, _observability, _platform
from ._config import (
    FRONTENDS,
    HOST,
    KAFKA_BROKERS,
    PORTS,
    SERVICE_PORTS,
    kafka_bootstrap,
    kafka_env,
    kafka_nodes,
    service_env,
)
from ._credentials import test_run_env
from ._process import ManagedProcess, StartError, log_tail

# The demo staff account (user_service's seed_demo), also each service's admin login.
ADMIN_EMAIL = "staff@comptoir.dev"
ADMIN_PASSWORD = "Comptoir-staff-2026"  # noqa: S105 - a published demo credential, devstack only


def _infra_processes() -> list[ManagedProcess]:
    return [
        _infra.postgres_process(),
        _infra.redis_process(),
        *_infra.kafka_processes(),
        _infra.smtp_process(),
        _observability.prometheus_process(),
        _observability.traces_process(),
    ]


def _find(name: str) -> ManagedProcess:
    for proc in _infra_processes() + _platform.all_processes():
        if proc.name == name:
            return proc
    known = ", ".join(p.name for p in _infra_processes() + _platform.all_processes())
    raise SystemExit(f"devstack: no process named {name!r}; known: {known}")


def _start(proc: ManagedProcess) -> None:
    began = time.monotonic()
    was_running = proc.running()
    print(f"devstack: {proc.name:<28} ", end="", flush=True)
    try:
        proc.start()
    except StartError as error:
        print("FAILED", flush=True)
        raise SystemExit(f"devstack: {error}") from None
    verb = "already running" if was_running else f"ready in {time.monotonic() - began:.1f} s"
    print(f"{verb} (pid {proc.pid()})", flush=True)


def _start_together(procs: list[ManagedProcess]) -> None:
    """Starts processes side by side (a cluster's nodes are ready only once a quorum
    of them runs), then prints one line each."""
    if len(procs) == 1:
        _start(procs[0])
        return

    def start(proc: ManagedProcess) -> str:
        began = time.monotonic()
        was_running = proc.running()
        proc.start()
        verb = "already running" if was_running else f"ready in {time.monotonic() - began:.1f} s"
        return f"{verb} (pid {proc.pid()})"

    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        futures = [(proc, pool.submit(start, proc)) for proc in procs]
        failures = []
        for proc, future in futures:
            try:
                print(f"devstack: {proc.name:<28} {future.result()}", flush=True)
            except StartError as error:
                print(f"devstack: {proc.name:<28} FAILED", flush=True)
                failures.append(str(error))
    if failures:
        raise SystemExit("devstack: " + "\n".join(failures))


def _start_kafka() -> None:
    brokers = _infra.kafka_processes()
    other = [proc.name for proc in _infra.other_layout_processes() if proc.running()]
    if other:
        raise SystemExit(
            f"devstack: {', '.join(other)} of the other Kafka layout run (COMPTOIR_KAFKA_BROKERS="
            f"{KAFKA_BROKERS} asks for {len(brokers)} broker(s)): `python -m devstack down` first"
        )
    if not any(proc.running() for proc in brokers):  # never (re)format the storage under a running broker
        _infra.kafka_prepare()
    _start_together(brokers)


def up_infra() -> None:
    _infra.postgres_prepare()
    _start(_infra.postgres_process())
    _infra.postgres_create_databases()
    _start(_infra.redis_process())
    _start_kafka()
    print(f"devstack: kafka principals and ACLs: {_infra.kafka_secure()}", flush=True)
    _infra.kafka_wait_for_snapshot()
    _start(_infra.smtp_process())
    prometheus = _observability.prometheus_process()
    already = prometheus.running()
    _start(prometheus)
    if already:
        _observability.reload_prometheus()  # the Procfiles may have changed
    _start(_observability.traces_process())


def _prepare_service(service: str) -> str:
    """Migrates the service's database, creates its topics and seeds demo data."""
    steps = ["migrate", "create_topics"]
    _platform.manage(service, "migrate", "--noinput")
    _platform.manage(service, "create_topics", kafka_admin=True)
    if _platform.has_command(service, "seed_demo"):
        _platform.manage(service, "seed_demo")
        steps.append("seed_demo")
    # After seed_demo: in user_service the admin login is the demo staff account itself.
    _platform.manage(service, "seed_admin", "--email", ADMIN_EMAIL, admin_password=ADMIN_PASSWORD)
    steps.append("seed_admin")
    return f"devstack: {service}: {', '.join(steps)}"


def up_services() -> None:
    django_services = [s for s in _platform.services() if _platform.is_django(s)]
    print(f"devstack: preparing {', '.join(django_services)} (migrate, topics, demo data)", flush=True)
    # Each service has its own database: their preparation runs side by side.
    with ThreadPoolExecutor(max_workers=3) as pool:
        for line in pool.map(_prepare_service, django_services):
            print(line, flush=True)
    for proc in _platform.all_processes():
        if not proc.running():
            # Each log holds the lines of the run `up` starts; the previous run's is kept as .log.1.
            proc.rotate_log()
        _start(proc)


def down(*, services_only: bool = False) -> None:
    # Services first (they hold connections), infrastructure last.
    infra = [] if services_only else _infra.other_layout_processes() + _infra_processes()
    for proc in reversed(infra + _platform.all_processes()):
        if proc.stop():
            print(f"devstack: stopped {proc.name}", flush=True)


def run_with(command: list[str], *, platform: bool) -> int:
    """Runs `command` with the infrastructure (and with `platform`, every service)
    up; afterwards stops only what it started itself."""
    if not command:
        raise SystemExit("devstack: run needs a command, e.g. `run -- pytest`")
    every = _infra_processes() + (_platform.all_processes() if platform else [])
    started_before = {proc.name for proc in every if proc.running()}
    try:
        up_infra()
        if platform:
            up_services()
        # Tests authenticate as the Kafka admin (they make topics of their own) and
        # get secrets of their own; the platform's processes have their own principals.
        env = {**os.environ, **kafka_env(), **test_run_env()}
        return subprocess.run(command, check=False, env=env).returncode
    finally:
        for proc in reversed(every):
            if proc.name not in started_before and proc.stop():
                print(f"devstack: stopped {proc.name}", flush=True)


def status_code(infra_running: list[bool], services_running: list[bool]) -> int:
    """0 for a state `up` or `down` leaves: nothing, the infrastructure alone (`up --infra`)
    or everything; 1 when part of the infrastructure or of the services is down."""
    if not any(infra_running) and not any(services_running):
        return 0
    if not all(infra_running):
        return 1
    return 0 if all(services_running) or not any(services_running) else 1


def status() -> int:
    ports = {
        "postgres": PORTS.postgres,
        "redis": PORTS.redis,
        **{_infra.kafka_process_name(node): node.port for node in kafka_nodes()},
        "smtp": PORTS.smtp,
        "prometheus": PORTS.prometheus,
        "traces": PORTS.traces_ui,
    }
    ports.update({f"{name}.web": port for name, port in SERVICE_PORTS.items()})
    # Workers, relays and consumers: the port their /metrics is served on.
    ports.update(
        {
            process: int(target.rsplit(":", 1)[1])
            for _, process, target in _platform.scrape_targets()
            if not process.endswith(".web")
        }
    )
    running: dict[str, bool] = {}
    for proc in _infra_processes() + _platform.all_processes():
        pid = proc.pid()
        port = ports.get(proc.name)
        where = f"{HOST}:{port}" if port else ""
        state = f"running (pid {pid})" if pid else "stopped"
        running[proc.name] = pid is not None
        print(f"{proc.name:<28} {state:<22} {where}")
    infra = [running[proc.name] for proc in _infra_processes()]
    services = [running[proc.name] for proc in _platform.all_processes()]
    code = status_code(infra, services)
    if code:
        print("devstack: part of the platform is down (see above; `python -m devstack logs NAME`)")
    elif all(infra) and not any(services):
        print("devstack: infrastructure only (`make up` starts the services)")
    return code


def print_endpoints() -> None:
    print("\nComptoir is up:")
    print(f"  PostgreSQL  {HOST}:{PORTS.postgres}  (one database and role per service)")
    print(f"  Redis       {HOST}:{PORTS.redis}")
    brokers = f" ({KAFKA_BROKERS} brokers, replication factor 3)" if KAFKA_BROKERS > 1 else ""
    print(f"  Kafka       {kafka_bootstrap()}{brokers}")
    print(f"  SMTP sink   {HOST}:{PORTS.smtp}  (mail kept in .devstack/mail/)")
    print(f"  Prometheus  http://{HOST}:{PORTS.prometheus}/  (alerts: /alerts, targets: /targets)")
    print(
        f"  Traces      http://{HOST}:{PORTS.traces_ui}/  ({_observability.traces_backend_name()}; "
        f"OTLP/HTTP on {HOST}:{PORTS.otlp_http})"
    )
    for service in _platform.services():
        port = SERVICE_PORTS[service]
        if service in FRONTENDS:
            continue
        admin = ", admin: /admin/" if _platform.is_django(service) else ""
        print(f"  {service:<16} http://{HOST}:{port}/  (health: /health/ready{admin})")
    print(f"  API docs    http://{HOST}:{SERVICE_PORTS['api_gateway']}/docs")
    if "storefront" in _platform.services():
        print(
            f"\n  Storefront  http://{HOST}:{SERVICE_PORTS['storefront']}/  "
            "(operations console: /console/, staff only)"
        )
    print(f"\n  Admin login (every service's /admin/, the console): {ADMIN_EMAIL} / {ADMIN_PASSWORD}")
    print("  Demo accounts: alice@comptoir.dev / Alice-demo-2026, bob@comptoir.dev / Bob-demo-2026")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up")
    up.add_argument("--infra", action="store_true", help="only PostgreSQL, Redis and Kafka")
    down_parser = sub.add_parser("down")
    down_parser.add_argument(
        "--services", action="store_true", help="stop the services, keep the infrastructure"
    )
    sub.add_parser("status")
    sub.add_parser("env")
    sub.add_parser("kafka-acls", help="the broker ACLs derived from contracts/events/catalog.json")
    for verb in ("start", "stop", "restart"):
        sub.add_parser(verb).add_argument("name")
    run = sub.add_parser("run")
    run.add_argument("--platform", action="store_true", help="also start every service")
    run.add_argument("command", nargs=argparse.REMAINDER)
    manage_parser = sub.add_parser("manage")
    manage_parser.add_argument("service")
    manage_parser.add_argument("args", nargs=argparse.REMAINDER)
    logs = sub.add_parser("logs")
    logs.add_argument("name", nargs="?")
    logs.add_argument("-n", "--lines", type=int, default=50)
    args = parser.parse_args(argv)

    if args.verb == "up":
        up_infra()
        if not args.infra:
            up_services()
            print_endpoints()
    elif args.verb == "down":
        down(services_only=args.services)
    elif args.verb == "status":
        return status()
    elif args.verb == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return run_with(command, platform=args.platform)
    elif args.verb == "manage":
        manage_args = args.args[1:] if args.args[:1] == ["--"] else args.args
        return _platform.manage_passthrough(args.service, manage_args)
    elif args.verb == "env":
        # What a test run gets: `eval "$(python -m devstack env)"` before running pytest by hand.
        for key, value in {**service_env(), **test_run_env()}.items():
            print(f"export {key}={value}")
    elif args.verb == "kafka-acls":
        for line in _infra.kafka_acl_report():
            print(line)
    elif args.verb in ("start", "restart"):
        proc = _find(args.name)
        if args.verb == "restart" and proc.stop():
            print(f"devstack: stopped {proc.name}", flush=True)
        _start(proc)
    elif args.verb == "stop":
        proc = _find(args.name)
        print(f"devstack: {'stopped' if proc.stop() else 'was not running:'} {proc.name}")
    elif args.verb == "logs":
        if args.name is None:
            for proc in _infra_processes() + _platform.all_processes():
                print(proc.log_file)
        else:
            print(log_tail(_find(args.name).log_file, args.lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
