"""The three infrastructure parts: a private PostgreSQL cluster, Redis and a
single-node KRaft Kafka broker run from its Maven Central artifacts (or, with
COMPTOIR_KAFKA_BROKERS=3, a cluster of three broker+controller nodes from the
same artifacts: replication factor 3, `min.insync.replicas` 2).

The broker authenticates every client (SASL/SCRAM-SHA-512 on the client
listener, SASL/PLAIN between the broker and its controller) and authorizes
every request with KRaft's StandardAuthorizer, denying what no ACL allows; see
`_credentials` for the principals and `kafka_secure` for users and ACLs.
"""

from __future__ import annotations

import base64
import functools
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._config import (
    CACHE_DIR,
    DATABASES,
    HOST,
    KAFKA_BROKERS,
    PORTS,
    ROOT,
    STATE_DIR,
    KafkaNode,
    kafka_bootstrap,
    kafka_nodes,
    postgres_home,
)
from ._credentials import KAFKA_ADMIN, KAFKA_CONTROLLER, KAFKA_MECHANISM, kafka_admin_config, kafka_password
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
    """An SMTP sink (aiosmtpd) that keeps every mail in a Maildir to read later
    (`devstack.smtp_sink`: the mails as received, no parsing, no fsync)."""
    maildir = STATE_DIR / "mail"
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
            "devstack.smtp_sink.MaildirSink",
            str(maildir),
        ],
        cwd=ROOT,  # where aiosmtpd imports the handler from
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


def kafka_layout_dir(brokers: int = KAFKA_BROKERS) -> Path:
    """The single broker's folder, or the cluster's (one sub-folder per node): each
    layout keeps its own data, so switching between them loses neither."""
    return STATE_DIR / ("kafka" if brokers == 1 else "kafka-cluster")


def _node_dir(node: KafkaNode, brokers: int = KAFKA_BROKERS) -> Path:
    layout = kafka_layout_dir(brokers)
    return layout if brokers == 1 else layout / f"node-{node.node_id}"


def _kafka_dir() -> Path:
    return kafka_layout_dir()


def kafka_process_name(node: KafkaNode, brokers: int = KAFKA_BROKERS) -> str:
    """`kafka` (the single broker) or `kafka-1`, `kafka-2`, `kafka-3` (the cluster's nodes)."""
    return "kafka" if brokers == 1 else f"kafka-{node.node_id}"


KAFKA_CATALOG = ROOT / "contracts" / "events" / "catalog.json"


def _kafka_security_props(node: KafkaNode) -> dict[str, str]:
    """SASL everywhere, the StandardAuthorizer, and nothing allowed without an ACL."""
    admin, controller = kafka_password(KAFKA_ADMIN), kafka_password(KAFKA_CONTROLLER)
    return {
        "listeners": f"SASL_PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://{HOST}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        # The controller listener authenticates too: a PLAINTEXT one would give anybody
        # on the machine the principal User:ANONYMOUS there.
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": KAFKA_MECHANISM,
        # Brokers replicate from each other as the admin principal (a super user).
        "sasl.mechanism.inter.broker.protocol": KAFKA_MECHANISM,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{KAFKA_ADMIN}" password="{admin}";'
        ),
        # SCRAM users live in the metadata log, which the controllers serve: their own
        # listener uses PLAIN with one static user, known to every node (brokers
        # reaching the quorum, controllers voting among themselves).
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{KAFKA_CONTROLLER}" password="{controller}" user_{KAFKA_CONTROLLER}="{controller}";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{KAFKA_ADMIN};User:{KAFKA_CONTROLLER}",
    }


def _replication_props(brokers: int) -> dict[str, str]:
    """One broker: nothing replicated. Three: every topic (internal ones too) on all
    three, and a write with acks=all acknowledged by two replicas at least, so the
    cluster keeps accepting writes, and loses none, with one broker down."""
    factor, min_isr = ("1", "1") if brokers == 1 else (str(brokers), "2")
    props = {
        "offsets.topic.replication.factor": factor,
        "transaction.state.log.replication.factor": factor,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": factor,
        "share.coordinator.state.topic.min.isr": min_isr,
    }
    if brokers > 1:
        props.update(
            {
                "default.replication.factor": factor,
                "min.insync.replicas": min_isr,
                "unclean.leader.election.enable": "false",
            }
        )
    return props


def _kafka_config(node: KafkaNode | None = None, brokers: int = KAFKA_BROKERS) -> Path:
    node = node or kafka_nodes(brokers)[0]
    work = _node_dir(node, brokers)
    work.mkdir(parents=True, exist_ok=True)
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in kafka_nodes(brokers))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        **_kafka_security_props(node),
        "log.dirs": str(work / "data"),
        "num.partitions": "3",
        "offsets.topic.num.partitions": "1",
        **_replication_props(brokers),
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "log.cleaner.dedupe.buffer.size": "8388608",
        "auto.create.topics.enable": "false",
        # A metadata snapshot within seconds of a change (Kafka's default: an hour or
        # 20 MB of records later). Kafka 4.1's ScramDelta.apply() drops
        # every user of a mechanism when a delta starting with none of them removes
        # one before adding the others: a restart replaying a metadata log in which
        # users were created and deleted (the test suites' principals) from its start
        # lost the admin, and every SCRAM login was refused. Replayed from a snapshot
        # that holds the admin, the users never run out and nothing is lost.
        "metadata.log.max.snapshot.interval.ms": str(SNAPSHOT_INTERVAL_MS),
    }
    config = work / "server.properties"
    # It holds passwords: readable by the checkout's owner only.
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{k}={v}\n" for k, v in props.items()))
    config.chmod(0o600)
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


SNAPSHOT_INTERVAL_MS = 5000


def _metadata_snapshots(node: KafkaNode) -> list[Path]:
    """The node's metadata snapshots (`<offset>-<epoch>.checkpoint`), the bootstrap one aside."""
    folder = _node_dir(node) / "data" / "__cluster_metadata-0"
    return [path for path in folder.glob("*.checkpoint") if not path.name.startswith("00000000000000000000-")]


def kafka_wait_for_snapshot(deadline_s: float = 60.0) -> None:
    """Waits until every node wrote a metadata snapshot (a fresh storage's first one,
    a few seconds after the admin's principals are in force): from then on a restart
    replays the metadata log from a snapshot that holds the admin (see
    `metadata.log.max.snapshot.interval.ms` above)."""
    end = time.monotonic() + deadline_s
    while not all(_metadata_snapshots(node) for node in kafka_nodes()):
        if time.monotonic() > end:
            raise SystemExit(f"devstack: Kafka wrote no metadata snapshot in {deadline_s:.0f} s")
        time.sleep(0.5)


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise SystemExit("devstack: java not installed (run `make install`)")
    return java


# Bumped when a storage formatted before must be formatted again: 2, the metadata
# snapshots that keep the admin's SCRAM credentials across restarts (see below).
STORAGE_GENERATION = 2


def _admin_fingerprint() -> str:
    key = f"{KAFKA_ADMIN}:{kafka_password(KAFKA_ADMIN)}:{STORAGE_GENERATION}"
    return hashlib.sha256(key.encode()).hexdigest()


def _storage_marker(brokers: int = KAFKA_BROKERS) -> Path:
    return kafka_layout_dir(brokers) / "scram-admin.sha256"


def _data_dirs(brokers: int = KAFKA_BROKERS) -> list[Path]:
    return [_node_dir(node, brokers) / "data" for node in kafka_nodes(brokers)]


def kafka_reset() -> None:
    """Forgets the local brokers' data (topics, offsets, users, ACLs): the next prepare formats."""
    for data in _data_dirs():
        shutil.rmtree(data, ignore_errors=True)
    _storage_marker().unlink(missing_ok=True)


def kafka_formatted() -> bool:
    """Whether the storage holds formatted brokers with the current admin's credentials."""
    marker = _storage_marker()
    return (
        marker.exists()
        and marker.read_text().strip() == _admin_fingerprint()
        and all((data / "meta.properties").exists() for data in _data_dirs())
    )


def _format(node: KafkaNode, cluster_id: str, libs: Path) -> None:
    result = subprocess.run(
        [
            _java(),
            "-cp",
            f"{libs}/*",
            f"-Dlog4j2.configurationFile={_node_dir(node) / 'log4j2.properties'}",
            "kafka.tools.StorageTool",
            "format",
            # One argument: a URL-safe base64 id may begin with "-", which the tool's
            # parser would take for an option when given as a separate word.
            f"--cluster-id={cluster_id}",
            "-c",
            str(_node_dir(node) / "server.properties"),
            # KIP-900: the admin exists before the broker first starts; the services'
            # principals are added (and kept current) through it by `kafka_secure`.
            "--add-scram",
            f"{KAFKA_MECHANISM}=[name={KAFKA_ADMIN},password={kafka_password(KAFKA_ADMIN)}]",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"devstack: formatting the Kafka storage of node {node.node_id} failed:\n"
            f"{result.stdout}\n{result.stderr}"
        )


def kafka_prepare() -> None:
    """Fetches the jars and formats the KRaft storage of every node once (one cluster
    id for all), with the admin's SCRAM credentials.

    A storage formatted before the broker authenticated (or for other admin
    credentials), or a cluster with a node missing its storage, cannot let the
    admin in: it is formatted again, and the services recreate their topics at
    start-up.
    """
    libs = kafka_libs()
    nodes = kafka_nodes()
    for node in nodes:
        _kafka_config(node)
    if kafka_formatted():
        return
    if any(data.exists() for data in _data_dirs()):
        print(
            "devstack: the Kafka storage predates SASL or the admin's credentials: formatting it again",
            flush=True,
        )
    kafka_reset()
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        list(pool.map(lambda node: _format(node, cluster_id, libs), nodes))
    _storage_marker().write_text(_admin_fingerprint() + "\n")


def _kafka_ready(node: KafkaNode) -> bool:
    """The node's own listener lets the admin in and names the node among the cluster's
    live brokers (a restarted node of the cluster is back, not only listening)."""
    from confluent_kafka.admin import AdminClient

    if not _port_open(node.port):
        return False
    admin = AdminClient(
        {
            "bootstrap.servers": f"{HOST}:{node.port}",
            "socket.timeout.ms": 2000,
            "log_level": 0,
            **kafka_admin_config(),
        }
    )
    # The cluster's nodes, not every topic's metadata: after a restart with the
    # thousands of partitions test runs leave behind, listing them all could take
    # longer than each probe's deadline, again and again, while the broker serves.
    cluster = admin.describe_cluster(request_timeout=2).result(timeout=3)
    return any(live.id == node.node_id for live in cluster.nodes)


def kafka_secure() -> str:
    """Gives every service of the catalogue its SCRAM principal and exactly the ACLs the
    catalogue implies (through the admin principal); returns a one-line summary."""
    from confluent_kafka.admin import AdminClient

    from comptoir._kafka_acls import (
        apply_acls,
        catalog_acls,
        catalog_services,
        load_catalog,
        upsert_scram_users,
    )

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap(), "log_level": 0, **kafka_admin_config()})
    catalog = load_catalog(KAFKA_CATALOG)
    services = catalog_services(catalog)
    # Upserted on every start: a new service, or a changed password, takes effect.
    upsert_scram_users(admin, {name: kafka_password(name) for name in services})
    rules = catalog_acls(catalog)
    created, deleted = apply_acls(admin, rules)
    return (
        f"{len(services)} principals, {len(rules)} ACLs from {KAFKA_CATALOG.relative_to(ROOT)} "
        f"({len(created)} created, {len(deleted)} deleted)"
    )


def kafka_acl_report() -> list[str]:
    """The ACL lines `python -m devstack kafka-acls` prints."""
    from comptoir._kafka_acls import catalog_acls, load_catalog

    return [str(rule) for rule in catalog_acls(load_catalog(KAFKA_CATALOG))]


def kafka_processes(brokers: int = KAFKA_BROKERS) -> list[ManagedProcess]:
    """The brokers of a layout: `kafka` alone, or `kafka-1`..`kafka-3`."""
    libs = CACHE_DIR / f"kafka-libs-{_kafka_version()}"
    # The broker of a laptop platform (the whole platform is held to 2 GiB): a small
    # heap, and the serial collector, which keeps no remembered sets or card tables
    # beside it (G1's took 44 MiB of a 320 MiB heap) and puts no write barriers in
    # the broker's code; its young collections of a heap this size pause for
    # milliseconds. Two malloc arenas bound the native memory the broker's threads
    # keep after a burst. Each node of the cluster gets less heap (its three JVMs
    # share the machine with the platform).
    heap = "-Xmx320m" if brokers == 1 else "-Xmx256m"
    return [
        ManagedProcess(
            name=kafka_process_name(node, brokers),
            argv=[
                _java(),
                "-Xms64m",
                heap,
                "-XX:+UseSerialGC",
                "-XX:MinHeapFreeRatio=10",
                "-XX:MaxHeapFreeRatio=30",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={_node_dir(node, brokers) / 'log4j2.properties'}",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(_node_dir(node, brokers) / "server.properties"),
            ],
            env={"MALLOC_ARENA_MAX": "2"},
            ready=functools.partial(_kafka_ready, node),
            ready_deadline_s=90,
            stop_deadline_s=30,
        )
        for node in kafka_nodes(brokers)
    ]


def kafka_process() -> ManagedProcess:
    """The single broker, or the cluster's first node."""
    return kafka_processes()[0]


def other_layout_processes() -> list[ManagedProcess]:
    """The brokers of the layout not chosen now (`down` stops them too; `up` refuses
    to start while they run: node 1 listens on the single broker's ports)."""
    return kafka_processes(3 if KAFKA_BROKERS == 1 else 1)
