"""Zero trust in the chart and compose: NetworkPolicies that follow the call graph the
code implies, pods without a Kubernetes API token, Redis only with credentials.

The call graph is read from the code, not from the chart: a Django service calls the
services whose `settings.<SERVICE>_URL` or `service_client("<service>")` its code uses,
and user_service (JWKS) when it verifies tokens through the chassis; the gateway calls
the upstreams of its routes.
The rendered policies are then evaluated the way a cluster does (a pod is selected by
every policy whose podSelector matches its labels; allowed traffic is the union of
their rules)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from _compose import load_model
from _repo import CHART_DIR, DJANGO_SERVICES, FRONTEND, GATEWAY, KUBERNETES_VERSION, ROOT
from test_helm import VALUES, by_kind, helm, kubeconform, render

SETTING_URL = re.compile(r"settings\.([A-Z]+)_SERVICE_URL\b|service_client\(\"([a-z]+)_service\"\)")
WEB_PORT = 8000
SCRAPED = ("worker", "relay", "consumer")  # processes that serve /metrics on their own port


def dns(service: str) -> str:
    return service.replace("_", "-")


# ---- the call graph, from the code -------------------------------------------------


def code_files(service: str) -> list[Path]:
    folder = ROOT / "services" / service
    return [
        path
        for path in folder.rglob("*.py")
        if not {"tests", "migrations"} & set(path.relative_to(folder).parts)
    ]


def django_service_calls(service: str) -> set[str]:
    called = set()
    for path in code_files(service):
        found = SETTING_URL.findall(path.read_text())
        called |= {f"{(setting or client).lower()}_service" for setting, client in found}
    settings = (ROOT / "services" / service / "config" / "settings.py").read_text()
    # The chassis verifies user tokens with user_service's JWKS unless the service
    # provides its keys itself (user_service signs them).
    if "COMPTOIR_JWKS_PROVIDER" not in settings:
        called.add("user_service")
    if called:
        called.add("user_service")  # the service token comes from user_service
    return called - {service}


def gateway_calls() -> set[str]:
    routes = yaml.safe_load((ROOT / "services" / GATEWAY / "gateway" / "routes.yaml").read_text())
    return {route["upstream"] for route in routes["routes"]} | {"user_service"}  # + JWKS


def frontend_calls() -> set[str]:
    """The storefront is configured with the gateway's address and no service's."""
    settings = (ROOT / "services" / FRONTEND / "config" / "settings.py").read_text()
    urls = set(re.findall(r'"([A-Z_]+)_URL"', settings)) - {"REDIS", "PUBLIC_GATEWAY"}
    return {name.lower() for name in urls}


CALL_GRAPH: dict[str, set[str]] = {
    **{service: django_service_calls(service) for service in DJANGO_SERVICES},
    GATEWAY: gateway_calls(),
    FRONTEND: frontend_calls(),
}


def test_the_call_graph_read_from_the_code_is_the_expected_one() -> None:
    """Guards the reading itself: an empty graph would make every check below vacuous."""
    expected = {
        "user_service": set(),
        "product_service": {"user_service"},
        "order_service": {"user_service", "product_service", "payment_service"},
        "payment_service": {"user_service"},
        "email_service": {"user_service"},
        GATEWAY: set(DJANGO_SERVICES),
        FRONTEND: {GATEWAY},
    }
    assert expected == CALL_GRAPH


# ---- evaluating rendered policies ---------------------------------------------------


@dataclass(frozen=True)
class Pod:
    owner: str  # the Deployment or Job
    service: str
    component: str
    labels: dict[str, str]
    spec: dict[str, Any]


def pods(docs: list[dict[str, Any]]) -> list[Pod]:
    found = []
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            found.append(
                Pod(
                    doc["metadata"]["name"],
                    labels["app.kubernetes.io/name"].replace("-", "_"),
                    labels["app.kubernetes.io/component"],
                    labels,
                    doc["spec"]["template"]["spec"],
                )
            )
    return found


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}, f"selector not understood here: {selector}"
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", f"selector not understood here: {selector}"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def policies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == "NetworkPolicy"]


def selecting(docs: list[dict[str, Any]], pod: Pod, kind: str) -> list[dict[str, Any]]:
    return [
        policy
        for policy in policies(docs)
        if kind in policy["spec"]["policyTypes"] and matches(policy["spec"]["podSelector"], pod.labels)
    ]


def in_namespace(peer: dict[str, Any]) -> bool:
    """A peer with a podSelector alone: pods of the policy's own namespace."""
    return set(peer) == {"podSelector"}


def reaches_the_chart(docs: list[dict[str, Any]], peer: dict[str, Any]) -> bool:
    return in_namespace(peer) and any(matches(peer["podSelector"], pod.labels) for pod in pods(docs))


def port_names(rule: dict[str, Any]) -> list[Any]:
    return [port["port"] for port in rule.get("ports", [])]


def egress_to_platform(docs: list[dict[str, Any]], pod: Pod) -> dict[tuple[str, str], set[Any]]:
    """(service, component) of the chart's pods `pod` may open, with the ports."""
    reached: dict[tuple[str, str], set[Any]] = {}
    for policy in selecting(docs, pod, "Egress"):
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), (
                f"{policy['metadata']['name']}: an egress rule without `to` allows everything"
            )
            for peer in rule["to"]:
                if not in_namespace(peer):
                    continue
                for other in pods(docs):
                    if matches(peer["podSelector"], other.labels):
                        reached.setdefault((other.service, other.component), set()).update(port_names(rule))
    return reached


def ingress_from(docs: list[dict[str, Any]], pod: Pod) -> list[tuple[dict[str, Any], list[Any], str]]:
    """Every (peer, ports, policy name) that may open `pod`."""
    allowed = []
    for policy in selecting(docs, pod, "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), (
                f"{policy['metadata']['name']}: an ingress rule without `from` admits anyone"
            )
            allowed += [(peer, port_names(rule), policy["metadata"]["name"]) for peer in rule["from"]]
    return allowed


def egress_violations(docs: list[dict[str, Any]], graph: dict[str, set[str]]) -> list[str]:
    """How the rendered egress differs from the call graph (empty: it matches)."""
    found = []
    for pod in pods(docs):
        reached = egress_to_platform(docs, pod)
        expected = {(callee, "web"): {WEB_PORT} for callee in graph[pod.service]}
        if reached != expected:
            found.append(f"{pod.owner} reaches {sorted(reached.items())}, its code calls {sorted(expected)}")
    return found


def unselected_pods(docs: list[dict[str, Any]]) -> list[str]:
    """Pods that no policy of their own service confines (or that default-deny misses)."""
    found = []
    for pod in pods(docs):
        own = [
            policy
            for policy in selecting(docs, pod, "Egress")
            if policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
            == dns(pod.service)
        ]
        if not own:
            found.append(f"{pod.owner}: no egress policy of {pod.service}")
    if not any(is_default_deny(policy) for policy in policies(docs)):
        found.append("no default-deny policy for the namespace")
    return found


def is_default_deny(policy: dict[str, Any]) -> bool:
    spec = policy["spec"]
    return (
        spec["podSelector"] == {}
        and set(spec["policyTypes"]) == {"Ingress", "Egress"}
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def chart_values(values: str) -> dict[str, Any]:
    merged: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    if values == "throwaway":
        extra = yaml.safe_load((CHART_DIR / "ci" / "throwaway-values.yaml").read_text())
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


@pytest.fixture(params=list(VALUES))
def rendered(request: pytest.FixtureRequest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(render(*VALUES[request.param])) if doc]
    return docs, chart_values(request.param)


# ---- the chart's pods -------------------------------------------------------------


def test_workers_relays_and_consumers_serve_metrics_on_the_port_prometheus_may_open(
    rendered: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    docs, values = rendered
    port = values["platform"]["metricsPort"]
    scraped = [pod for pod in pods(docs) if pod.component in SCRAPED]
    assert len(scraped) == 14  # 5 workers, 5 relays, 4 consumers
    for pod in scraped:
        container = pod.spec["containers"][0]
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env == {"COMPTOIR_METRICS_PORT": str(port), "COMPTOIR_METRICS_HOST": "0.0.0.0"}, pod.owner  # noqa: S104 - the pod's address, behind its policy
        assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}], (
            pod.owner
        )


def test_no_pod_gets_a_kubernetes_api_token(rendered: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    docs, _ = rendered
    accounts = by_kind(docs, "ServiceAccount")
    assert sorted(accounts) == sorted(dns(s) for s in (*DJANGO_SERVICES, GATEWAY, FRONTEND))
    for account in accounts.values():
        assert account["automountServiceAccountToken"] is False
    found = pods(docs)
    # 23 processes of the Django services (email_service has no beat), the gateway, the
    # storefront, 5 migration Jobs
    assert len(found) == 30
    for pod in found:
        assert pod.spec["automountServiceAccountToken"] is False, pod.owner
        assert pod.spec["serviceAccountName"] == dns(pod.service), pod.owner


def test_a_network_policy_confines_every_pod(rendered: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    docs, _ = rendered
    assert unselected_pods(docs) == []


def test_each_service_reaches_only_the_services_its_code_calls(
    rendered: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    docs, _ = rendered
    assert egress_violations(docs, CALL_GRAPH) == []


def test_each_service_reaches_its_own_database_redis_kafka_dns_and_the_collector(
    rendered: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    docs, values = rendered
    np = values["networkPolicy"]
    kafka_ports = {
        int(server.rsplit(":", 1)[1]) for server in values["platform"]["kafkaBootstrapServers"].split(",")
    }
    otlp_port = urlsplit(values["platform"]["otlpEndpoint"]).port
    for pod in pods(docs):
        outside = [
            (peer, tuple(port_names(rule)))
            for policy in selecting(docs, pod, "Egress")
            for rule in policy["spec"].get("egress", [])
            for peer in rule["to"]
            if not reaches_the_chart(docs, peer)
        ]
        dns_ports = tuple(port["port"] for port in np["dns"]["ports"])
        expected: list[tuple[Any, tuple[Any, ...]]] = [(peer, dns_ports) for peer in np["dns"]["peers"]]
        expected += [(peer, tuple(np["redis"]["ports"])) for peer in np["redis"]["peers"]]
        if pod.service != FRONTEND:  # the storefront exports no traces: its calls are the gateway's
            expected += [(peer, (otlp_port,)) for peer in np["tracing"]["peers"]]
        if pod.service not in (GATEWAY, FRONTEND):
            expected += [(peer, tuple(sorted(kafka_ports))) for peer in np["kafka"]["peers"]]
            expected += [(peer, (np["databases"]["port"],)) for peer in np["databases"]["peers"][pod.service]]
        elif pod.service == GATEWAY:  # the operations routes read the trace query API and Prometheus
            expected += [(peer, tuple(np["opsBackends"]["ports"])) for peer in np["opsBackends"]["peers"]]
        if pod.service == "email_service":
            expected += [(peer, (values["platform"]["emailPort"],)) for peer in np["smtp"]["peers"]]
        assert sorted(outside, key=yaml.safe_dump) == sorted(expected, key=yaml.safe_dump), pod.owner


def test_no_two_services_share_a_database_peer() -> None:
    peers = chart_values("default")["networkPolicy"]["databases"]["peers"]
    assert sorted(peers) == sorted(DJANGO_SERVICES)
    dumped = [yaml.safe_dump(peers[service]) for service in DJANGO_SERVICES]
    assert len(set(dumped)) == len(dumped)


def test_only_the_gateway_and_the_storefront_admit_the_ingress_controller(
    rendered: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    docs, values = rendered
    controller = values["networkPolicy"]["ingressController"]["peers"]
    monitoring = values["networkPolicy"]["monitoring"]["peers"]
    callers = {
        callee: {caller for caller, calls in CALL_GRAPH.items() if callee in calls} for callee in CALL_GRAPH
    }
    for pod in pods(docs):
        allowed = ingress_from(docs, pod)
        storefront = {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "storefront",
                    "app.kubernetes.io/instance": "comptoir",
                }
            }
        }
        if pod.service == GATEWAY:
            assert sorted((yaml.safe_dump(p), ports) for p, ports, _ in allowed) == sorted(
                [(yaml.safe_dump(p), ["http"]) for p in [*controller, storefront]]
                # Prometheus scrapes the gateway's metrics port, never its public one.
                + [(yaml.safe_dump(p), ["metrics"]) for p in monitoring]
            )
            continue
        if pod.service == FRONTEND:
            assert [(p, ports) for p, ports, _ in allowed] == [(p, ["http"]) for p in controller]
            continue
        for peer, _, name in allowed:
            assert peer not in controller, f"{name} admits the ingress controller into {pod.owner}"
        if pod.component in SCRAPED:
            # Workers, relays, consumers: Prometheus on their metrics port, nobody else.
            assert [(peer, ports) for peer, ports, _ in allowed] == [(p, ["metrics"]) for p in monitoring]
            continue
        if pod.component != "web":
            # Beat, migrations: nothing opens them.
            assert allowed == [], pod.owner
            continue
        from_platform = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"].replace("-", "_")
            for peer, ports, _ in allowed
            if in_namespace(peer) and ports == ["http"]
        }
        assert from_platform == callers[pod.service], pod.owner
        outside = [(peer, ports) for peer, ports, _ in allowed if not in_namespace(peer)]
        assert outside == [(peer, ["http"]) for peer in monitoring], pod.owner


def test_the_checks_fail_on_an_extra_call_or_a_missing_policy() -> None:
    """order_service allowed to reach email_service, or a service without its policy,
    is caught."""
    extra = [
        doc
        for doc in yaml.safe_load_all(
            render(
                "--set",
                "services.order_service.calls={user_service,product_service,payment_service,email_service}",
            )
        )
        if doc
    ]
    violations = egress_violations(extra, CALL_GRAPH)
    assert violations
    assert all(v.startswith("order-service") for v in violations)
    assert any("('email_service', 'web')" in v for v in violations)

    docs = [doc for doc in yaml.safe_load_all(render()) if doc]
    missing = [doc for doc in docs if doc["metadata"]["name"] != "payment-service-egress"]
    assert sorted(unselected_pods(missing)) == sorted(
        f"{name}: no egress policy of payment_service"
        for name in (
            "payment-service",
            "payment-service-worker",
            "payment-service-beat",
            "payment-service-relay",
            "payment-service-consumer",
            "payment-service-migrate",
        )
    )


def test_policies_disabled_change_nothing_else() -> None:
    def without_policies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [doc for doc in docs if doc["kind"] != "NetworkPolicy"]

    on = [doc for doc in yaml.safe_load_all(render()) if doc]
    off = [doc for doc in yaml.safe_load_all(render("--set", "networkPolicy.enabled=false")) if doc]
    # default deny, 5 x (egress, web ingress, metrics ingress), the gateway, the storefront
    assert len(policies(on)) == 18
    assert policies(off) == []
    assert off == without_policies(on)


def test_the_default_deny_policy_can_be_left_to_the_namespace_owner() -> None:
    docs = [doc for doc in yaml.safe_load_all(render("--set", "networkPolicy.defaultDeny=false")) if doc]
    assert "default-deny" not in by_kind(docs, "NetworkPolicy")
    assert len(policies(docs)) == 17


def test_a_service_without_its_database_peers_is_refused() -> None:
    result = helm(
        "template",
        "comptoir",
        str(CHART_DIR),
        "--kube-version",
        KUBERNETES_VERSION,
        "--set",
        "networkPolicy.databases.peers.order_service=null",
    )
    assert result.returncode == 1
    assert "networkPolicy.databases.peers.order_service" in result.stderr


def test_kubeconform_validates_the_network_policies(tmp_path: Path) -> None:
    """The rendered policies are checked against the NetworkPolicy schema (a misspelt
    field is refused), not skipped."""
    docs = [doc for doc in yaml.safe_load_all(render()) if doc]
    good = tmp_path / "policies.yaml"
    good.write_text(yaml.safe_dump_all(policies(docs)))
    result = kubeconform(good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "18 resources found in 1 file - Valid: 18, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout
    broken = policies(docs)[1]
    broken["spec"]["egress"][0]["ports"][0]["prot"] = "UDP"
    bad = tmp_path / "broken.yaml"
    bad.write_text(yaml.safe_dump(broken))
    result = kubeconform(bad)
    assert result.returncode == 1
    assert "prot" in result.stdout


# ---- Redis only with credentials --------------------------------------------------


def redis_credentials(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    assert parts.scheme in {"redis", "rediss"}, url
    assert parts.username, f"{url}: Redis without a user"
    assert parts.password, f"{url}: Redis without a password"
    return parts.username, parts.password


def test_the_chart_gives_every_process_its_own_redis_user_from_its_secret() -> None:
    docs = [doc for doc in yaml.safe_load_all(render(*VALUES["throwaway"])) if doc]
    for config in by_kind(docs, "ConfigMap").values():
        assert not {"REDIS_URL", "GATEWAY_REDIS_URL", "CELERY_BROKER_URL"} & set(config["data"]), config[
            "metadata"
        ]
    secrets = {name: doc["stringData"] for name, doc in by_kind(docs, "Secret").items()}
    users: dict[str, str] = {}
    for pod in pods(docs):
        if pod.component == "migrate":
            continue
        refs = [ref["secretRef"] for ref in pod.spec["containers"][0]["envFrom"] if "secretRef" in ref]
        assert refs == [{"name": f"{dns(pod.service)}-secrets"}], pod.owner  # required, not optional
        user, _ = redis_credentials(secrets[refs[0]["name"]]["REDIS_URL"])
        assert user == dns(pod.service), pod.owner
        users[pod.service] = user
    assert len(set(users.values())) == len(users) == 7


def test_the_chart_refuses_a_redis_url_without_credentials() -> None:
    result = helm(
        "template",
        "comptoir",
        str(CHART_DIR),
        "--kube-version",
        KUBERNETES_VERSION,
        *VALUES["throwaway"],
        "--set",
        "secretValues.order_service.REDIS_URL=redis://redis-master.redis.svc:6379/3",
    )
    assert result.returncode == 1
    assert "secretValues.order_service.REDIS_URL" in result.stderr


def test_compose_redis_admits_only_its_acl_users() -> None:
    services = load_model(".env.example")["services"]
    redis = services["redis"]
    script = redis["command"][-1]
    assert "user default off" in script
    assert "--aclfile /tmp/users.acl" in script
    acl = dict(re.findall(r"^user (\w+) on >\$\{(\w+)\} ", script, re.MULTILINE))
    rules = dict(re.findall(r"^user (\w+) on >\S+ (.+)$", script, re.MULTILINE))
    assert re.search(r"^rules='~\* &\* \+@all -@admin -@dangerous'$", script, re.MULTILINE)
    assert "REDISCLI_AUTH" in redis["healthcheck"]["test"][1]
    users: dict[str, str] = {}
    for name, container in services.items():
        url = container.get("environment", {}).get("REDIS_URL")
        if url is None:
            continue
        service = container["labels"]["com.comptoir.service"]
        user, password = redis_credentials(url)
        assert user == service, name
        assert redis["environment"][acl[user]] == password, name  # the ACL's password for that user
        assert rules[user] == "$rules", name  # not the admin's rights
        users[service] = user
    assert sorted(users) == sorted((*DJANGO_SERVICES, GATEWAY, FRONTEND))
    assert set(acl) == {*users.values(), "comptoir_admin"}
