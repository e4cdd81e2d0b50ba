"""deploy/compose: the whole platform, healthy before anything depends on it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from _compose import InterpolationError, docker_compose_config, docker_compose_model, load_model, load_raw
from _repo import COMPOSE_DIR, DJANGO_SERVICES, ROOT, run

MODES = {"single": (".env.example",), "ha": (".env.example", "ha.env")}
# Official images that the platform uses, pinned by version (never latest).
PINNED = re.compile(r"^[a-z0-9./-]+:(v?\d+\.\d+(\.\d+)?)(-[a-z0-9.]+)?$")
ONE_SHOT = {"migrate", "seed"}


@pytest.fixture(params=list(MODES))
def model(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_model(*MODES[request.param])


def process(service: dict[str, Any]) -> str:
    return str(service.get("labels", {}).get("com.comptoir.process", ""))


def owner(service: dict[str, Any]) -> str:
    return str(service.get("labels", {}).get("com.comptoir.service", ""))


# ---- docker compose itself ------------------------------------------------------

# `make delivery-check` builds the plugin first: without it these checks would prove nothing.
NO_COMPOSE = "the docker compose plugin is missing: run `bash devstack/tools.sh` (make delivery-check does)"


@pytest.mark.parametrize("mode", list(MODES))
def test_docker_compose_config_accepts_the_file(mode: str) -> None:
    result = docker_compose_config(*MODES[mode], extra=("--quiet",))
    assert result is not None, NO_COMPOSE
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_run_without_the_secrets() -> None:
    result = docker_compose_config(extra=("--quiet",))
    assert result is not None, NO_COMPOSE
    assert result.returncode != 0
    assert "missing a value" in result.stderr


@pytest.mark.parametrize("mode", list(MODES))
def test_our_loader_matches_docker_compose(mode: str) -> None:
    """The structural tests read our loader's model: check it against the real one."""
    theirs = docker_compose_model(*MODES[mode])
    assert theirs is not None, NO_COMPOSE
    ours = load_model(*MODES[mode])
    assert sorted(ours["services"]) == sorted(theirs["services"])
    for name, service in ours["services"].items():
        their = theirs["services"][name]
        assert service["environment"] == {k: str(v) for k, v in (their.get("environment") or {}).items()}, (
            name
        )
        assert service.get("image") == their.get("image"), name
        assert {dep: spec["condition"] for dep, spec in service["depends_on"].items()} == {
            dep: spec["condition"] for dep, spec in (their.get("depends_on") or {}).items()
        }, name


# ---- structure ------------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck(model: dict[str, Any]) -> None:
    missing = [
        name
        for name, service in model["services"].items()
        if process(service) not in ONE_SHOT and not service.get("healthcheck", {}).get("test")
    ]
    assert missing == []


def test_one_shot_jobs_do_not_restart(model: dict[str, Any]) -> None:
    jobs = {name: s for name, s in model["services"].items() if process(s) in ONE_SHOT}
    assert len(jobs) >= len(DJANGO_SERVICES)
    assert {name: s.get("restart") for name, s in jobs.items()} == dict.fromkeys(jobs, "no")


def test_every_image_is_pinned(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        image = service["image"]
        if "build" in service:
            assert image == f"comptoir/{owner(service)}:dev", (name, image)
        else:
            assert PINNED.match(image), (name, image)


def test_every_dependency_waits_for_health_or_completion(model: dict[str, Any]) -> None:
    services = model["services"]
    for name, service in services.items():
        for dependency, spec in service["depends_on"].items():
            if not spec.get("required", True) and dependency not in services:
                continue  # an `ha` broker, absent from the single-broker mode
            target = services[dependency]
            expected = "service_completed_successfully" if process(target) in ONE_SHOT else "service_healthy"
            assert spec["condition"] == expected, (name, dependency, spec)


def test_every_application_process_waits_for_its_migrations(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        if owner(service) in DJANGO_SERVICES and process(service) not in {"database", "migrate"}:
            prefix = owner(service).removesuffix("_service")
            assert f"{prefix}-migrate" in service["depends_on"], name


def _database_url(service: dict[str, Any]) -> tuple[str, str, str] | None:
    url = service["environment"].get("DATABASE_URL")
    if not url:
        return None
    match = re.fullmatch(r"postgres://([^:]+):[^@]+@([^:/]+):5432/(\w+)", url)
    assert match, url
    return match.group(1), match.group(2), match.group(3)


def test_no_service_reads_another_services_database(model: dict[str, Any]) -> None:
    services = model["services"]
    databases = {owner(s): name for name, s in services.items() if process(s) == "database"}
    assert sorted(databases) == sorted(DJANGO_SERVICES)  # one PostgreSQL per service
    for name, service in services.items():
        url = _database_url(service)
        if url is None:
            continue
        user, host, database = url
        assert (user, host, database) == (owner(service), databases[owner(service)], owner(service)), name
        # ...and only its own processes depend on (or can start) that database.
    for name, service in services.items():
        for dependency in service["depends_on"]:
            if dependency in databases.values():
                assert databases[owner(service)] == dependency, (name, dependency)
    for service_name, db_name in databases.items():
        db = services[db_name]["environment"]
        assert (db["POSTGRES_DB"], db["POSTGRES_USER"]) == (service_name, service_name)


def test_gateway_and_storefront_have_no_database_and_are_the_only_published_applications(
    model: dict[str, Any],
) -> None:
    services = model["services"]
    assert "DATABASE_URL" not in services["api-gateway"]["environment"]
    assert "DATABASE_URL" not in services["storefront"]["environment"]
    # The storefront reaches the platform through the gateway only.
    assert services["storefront"]["environment"]["API_GATEWAY_URL"] == "http://api-gateway:8000"
    assert not any(k.endswith("_SERVICE_URL") for k in services["storefront"]["environment"])
    published = {name for name, s in services.items() if s.get("ports") and owner(s)}
    assert published == {"api-gateway", "storefront"}
    for name, service in services.items():
        for port in service.get("ports", []):
            text = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            assert text.startswith("127.0.0.1:"), (name, port)


def test_every_django_service_runs_each_process_kind(model: dict[str, Any]) -> None:
    kinds: dict[str, set[str]] = {}
    for service in model["services"].values():
        kinds.setdefault(owner(service), set()).add(process(service))
    for name in DJANGO_SERVICES:
        assert {"database", "migrate", "web", "worker"} <= kinds[name], name
        # email_service's worker sweeps lost mail deliveries itself: no beat.
        assert ("beat" in kinds[name]) == (name != "email_service"), name
    assert {"product_service", "order_service", "payment_service", "email_service"} == {
        name for name, found in kinds.items() if "consumer" in found
    }
    # The relay: a process of its own, or a thread of the consumer (`--with-relay`).
    with_relay = {
        owner(service)
        for service in model["services"].values()
        if process(service) == "consumer" and "--with-relay" in service["command"]
    }
    assert with_relay == {"product_service", "order_service", "payment_service"}
    for name in DJANGO_SERVICES:
        assert ("relay" in kinds[name]) != (name in with_relay), name


def test_celery_workers_listen_on_their_service_queue(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        if process(service) == "worker":
            command = service["command"]
            assert command[command.index("-Q") + 1] == owner(service), name


def test_procfile_processes_all_run_in_compose(model: dict[str, Any]) -> None:
    """A process kind added to a service's Procfile must be added here too."""
    kinds: dict[str, set[str]] = {}
    for service in model["services"].values():
        kinds.setdefault(owner(service), set()).add(process(service))
    for name in DJANGO_SERVICES:
        procfile = ROOT / "services" / name / "Procfile"
        if not procfile.exists():
            continue
        declared = {
            line.split(":", 1)[0].strip()
            for line in procfile.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
        assert declared - kinds[name] == set(), name


def devstack_kafka_version() -> str:
    """The broker version the devstack (and so every test) runs: its Maven pom's kafka.version."""
    pom = (ROOT / "devstack" / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert found is not None, "devstack/kafka/pom.xml names no kafka.version"
    return found.group(1)


def test_compose_runs_the_kafka_version_the_devstack_tests_against(model: dict[str, Any]) -> None:
    brokers = {name: s["image"] for name, s in model["services"].items() if process(s) == "kafka"}
    assert brokers, "no Kafka broker in compose"
    assert set(brokers.values()) == {f"apache/kafka:{devstack_kafka_version()}"}, brokers
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"apache/kafka:([\w.]+)", readme) == [devstack_kafka_version()]


def test_ha_profile_runs_three_brokers_with_rf3_and_min_isr2() -> None:
    single = load_model(*MODES["single"])["services"]
    ha = load_model(*MODES["ha"])["services"]
    assert sorted(n for n in single if n.startswith("kafka-")) == ["kafka-1"]
    brokers = sorted(n for n in ha if n.startswith("kafka-"))
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    voters = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    for broker in brokers:
        env = ha[broker]["environment"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert ha[broker]["image"] == f"apache/kafka:{devstack_kafka_version()}"
    assert {ha[b]["environment"]["KAFKA_NODE_ID"] for b in brokers} == {"1", "2", "3"}
    assert ha["order-consumer"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == (
        "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    )
    assert ha["order-consumer"]["environment"]["COMPTOIR_EVENT_TOPIC_REPLICATION_FACTOR"] == "3"
    # Topics are created only once all three brokers are healthy.
    assert {"kafka-1", "kafka-2", "kafka-3"} <= set(ha["order-migrate"]["depends_on"])
    assert single["kafka-1"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093"


def test_infrastructure_and_observability_are_all_there(model: dict[str, Any]) -> None:
    kinds = {process(s) for s in model["services"].values()}
    expected = {
        "redis",
        "kafka",
        "mailpit",
        "prometheus",
        "grafana",
        "jaeger",
        "elasticsearch",
        "logstash",
        "kibana",
    }
    assert expected <= kinds


def test_mounted_configuration_files_exist() -> None:
    services = load_model(*MODES["single"])["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if not source.startswith("."):
                continue
            path = (COMPOSE_DIR / source).resolve()
            if "observability" in path.parts and not (ROOT / "deploy" / "observability").exists():
                continue  # provided by the observability work, not here yet
            assert path.exists(), (name, source)


# ---- secrets --------------------------------------------------------------------------


def test_secrets_are_never_written_in_the_compose_file() -> None:
    text = (COMPOSE_DIR / "compose.yaml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET)[A-Z_]*:\s", line):
            value = line.split(":", 1)[1].strip()
            assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), line
    assert "change-me" not in text


def test_compose_refuses_to_start_without_the_secrets() -> None:
    with pytest.raises(InterpolationError, match="missing a value"):
        load_model()


def test_env_file_is_ignored_and_the_example_is_committed() -> None:
    tracked = run(["git", "ls-files", "deploy/compose"]).stdout.split()
    assert "deploy/compose/.env.example" in tracked
    assert "deploy/compose/.env" not in tracked
    ignored = run(["git", "check-ignore", "-q", "deploy/compose/.env"])
    assert ignored.returncode == 0
    example = (COMPOSE_DIR / ".env.example").read_text()
    for variable in re.findall(r"\$\{(\w+):\?", (COMPOSE_DIR / "compose.yaml").read_text()):
        assert re.search(rf"^{variable}=change-me", example, re.MULTILINE), variable


def test_raw_file_uses_no_latest_tag() -> None:
    assert ":latest" not in (COMPOSE_DIR / "compose.yaml").read_text()
    assert load_raw()["name"] == "comptoir"
