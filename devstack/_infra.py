"""The three infrastructure parts: a private PostgreSQL cluster, Redis and a
single-node KRaft Kafka broker run from its Maven Central artifacts."""

from __future__ import annotations

import base64
import glob
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from ._config import CACHE_DIR, DATABASES, HOST, PORTS, ROOT, STATE_DIR, postgres_home
from ._process import ManagedProcess

# ---------------------------------------------------------------- PostgreSQL

PG_SUPERUSER = "postgres"


def _pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise SystemExit("devstack: PostgreSQL server not installed (run `make install`)")
    return found[-1]


def _pg_paths() -> tuple[Path, Path]:
    home = postgres_home()
    return home / "data", home / "socket"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _pg_ready() -> bool:
    _, socket_dir = _pg_paths()
    result = subprocess.run(
        [_pg_bin("pg_isready"), "-q", "-h", str(socket_dir), "-p", str(PORTS.postgres)],
        check=False,
    )
    return result.returncode == 0 and _port_open(PORTS.postgres)


def _as_postgres(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, user=PG_SUPERUSER, check=False, capture_output=True, text=True, cwd="/")


def postgres_prepare() -> None:
    """Creates the private cluster once (initdb as the `postgres` system user)."""
    data, socket_dir = _pg_paths()
    if (data / "PG_VERSION").exists():
        return
    try:
        pg_user = pwd.getpwnam(PG_SUPERUSER)
    except KeyError:
        raise SystemExit("devstack: no `postgres` system user (is the server package installed?)") from None
    for folder in (data.parent, data, socket_dir):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, pg_user.pw_uid, pg_user.pw_gid)
    data.chmod(0o700)
    print(f"devstack: initdb {data}", flush=True)
    result = _as_postgres(
        [
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            PG_SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
    )
    if result.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise SystemExit(f"devstack: initdb failed:\n{result.stdout}\n{result.stderr}")


def postgres_process() -> ManagedProcess:
    data, socket_dir = _pg_paths()
    return ManagedProcess(
        name="postgres",
        argv=[
            _pg_bin("postgres"),
            "-D",
            str(data),
            "-h",
            HOST,
            "-p",
            str(PORTS.postgres),
            "-k",
            str(socket_dir),
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "fsync=on",
            "-c",
            "synchronous_commit=on",
            "-c",
            "log_min_messages=warning",
        ],
        ready=_pg_ready,
        user=PG_SUPERUSER,
        cwd=Path("/"),
        stop_signal=signal.SIGINT,  # "fast" shutdown: does not wait for clients
        ready_deadline_s=60,
    )


def _psql(sql: str, database: str = "postgres") -> str:
    _, socket_dir = _pg_paths()
    result = _as_postgres(
        [
            _pg_bin("psql"),
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(socket_dir),
            "-p",
            str(PORTS.postgres),
            "-d",
            database,
            "-c",
            sql,
        ]
    )
    if result.returncode != 0:
        raise SystemExit(f"devstack: psql failed: {sql}\n{result.stderr}")
    return result.stdout.strip()


def postgres_create_databases() -> None:
    """One role and one database per service, named after it; idempotent.

    The local password equals the role name (a development default; deployments
    pass DATABASE_URL). CREATEDB lets the test runner make its test databases.
    """
    for name in DATABASES:
        if not _psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'"):
            _psql(f"CREATE ROLE {name} LOGIN CREATEDB PASSWORD '{name}'")
        if not _psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            _psql(f"CREATE DATABASE {name} OWNER {name}")


# --------------------------------------------------------------------- Redis


def _redis_ready() -> bool:
    with socket.create_connection((HOST, PORTS.redis), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def redis_process() -> ManagedProcess:
    work = STATE_DIR / "redis"
    work.mkdir(parents=True, exist_ok=True)
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("devstack: redis-server not installed (run `make install`)")
    return ManagedProcess(
        name="redis",
        argv=[
            redis_server,
            "--bind",
            HOST,
            "--port",
            str(PORTS.redis),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ],
        ready=_redis_ready,
        ready_deadline_s=20,
    )


# ----------------------------------------------------------------- SMTP sink


def smtp_process() -> ManagedProcess:
    """An SMTP sink (aiosmtpd) that keeps every mail in a Maildir to read later."""
    maildir = STATE_DIR / "mail"
    for sub in ("tmp", "new", "cur"):  # the Maildir layout the sink's handler writes into
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name="smtp",
        argv=[
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"{HOST}:{PORTS.smtp}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(maildir),
        ],
        ready=lambda: _port_open(PORTS.smtp),
        ready_deadline_s=20,
    )


# --------------------------------------------------------------------- Kafka

KAFKA_POM = ROOT / "devstack" / "kafka" / "pom.xml"


def _kafka_version() -> str:
    text = KAFKA_POM.read_text()
    return text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]


def kafka_libs() -> Path:
    """The broker's runtime classpath, copied from Maven Central once and cached."""
    libs = CACHE_DIR / f"kafka-libs-{_kafka_version()}"
    stamp = libs / ".complete"
    if stamp.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("devstack: Maven not installed (run `make install`)")
    print(f"devstack: fetching the Kafka {_kafka_version()} broker jars with Maven", flush=True)
    shutil.rmtree(libs, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"devstack: mvn failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    stamp.write_text("ok\n")
    return libs


def _kafka_dir() -> Path:
    return STATE_DIR / "kafka"


def _kafka_config() -> Path:
    work = _kafka_dir()
    work.mkdir(parents=True, exist_ok=True)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{PORTS.kafka_controller}",
        "listeners": f"PLAINTEXT://{HOST}:{PORTS.kafka},CONTROLLER://{HOST}:{PORTS.kafka_controller}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{PORTS.kafka}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(work / "data"),
        "num.partitions": "3",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "log.cleaner.dedupe.buffer.size": "8388608",
        "auto.create.topics.enable": "false",
    }
    config = work / "server.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    log4j = work / "log4j2.properties"
    log4j.write_text(
        "status = warn\n"
        "appender.console.type = Console\n"
        "appender.console.name = STDOUT\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.stdout.ref = STDOUT\n"
        "logger.kafka.name = kafka\n"
        "logger.kafka.level = INFO\n"
        "logger.state.name = state.change.logger\n"
        "logger.state.level = WARN\n"
        "logger.org.name = org.apache.kafka\n"
        "logger.org.level = WARN\n"
    )
    return config


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise SystemExit("devstack: java not installed (run `make install`)")
    return java


def kafka_prepare() -> None:
    """Fetches the jars and formats the KRaft storage once."""
    libs = kafka_libs()
    config = _kafka_config()
    if (_kafka_dir() / "data" / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    result = subprocess.run(
        [
            _java(),
            "-cp",
            f"{libs}/*",
            f"-Dlog4j2.configurationFile={_kafka_dir() / 'log4j2.properties'}",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"devstack: formatting Kafka storage failed:\n{result.stdout}\n{result.stderr}")


def _kafka_ready() -> bool:
    from confluent_kafka.admin import AdminClient

    if not _port_open(PORTS.kafka):
        return False
    admin = AdminClient(
        {"bootstrap.servers": f"{HOST}:{PORTS.kafka}", "socket.timeout.ms": 2000, "log_level": 0}
    )
    metadata = admin.list_topics(timeout=2)
    return bool(metadata.brokers)


def kafka_process() -> ManagedProcess:
    libs = CACHE_DIR / f"kafka-libs-{_kafka_version()}"
    return ManagedProcess(
        name="kafka",
        argv=[
            _java(),
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_kafka_dir() / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(_kafka_dir() / "server.properties"),
        ],
        ready=_kafka_ready,
        ready_deadline_s=90,
        stop_deadline_s=30,
    )
