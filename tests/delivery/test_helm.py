"""deploy/helm/comptoir renders and validates against the Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _repo import CHART_DIR, KUBERNETES_VERSION, TOOLS, run, tool

VALUES = {"default": [], "throwaway": ["-f", str(CHART_DIR / "ci" / "throwaway-values.yaml")]}


def helm(*args: str) -> Any:
    binary = tool("helm")
    assert binary, "helm is not installed: run `bash devstack/tools.sh`"
    return run([str(binary), *args], timeout=60)


def render(*extra: str) -> str:
    result = helm("template", "comptoir", str(CHART_DIR), "--kube-version", KUBERNETES_VERSION, *extra)
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def kubeconform(manifest: Path) -> Any:
    binary = tool("kubeconform")
    assert binary, "kubeconform is not installed: run `bash devstack/tools.sh`"
    schemas = TOOLS / "kubernetes-schemas"
    assert (schemas / f"v{KUBERNETES_VERSION}-standalone-strict" / "deployment-apps-v1.json").exists()
    location = str(schemas) + (
        "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
        "/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )
    return run(
        [
            str(binary),
            "-strict",
            "-summary",
            "-kubernetes-version",
            KUBERNETES_VERSION,
            "-schema-location",
            location,
            str(manifest),
        ],
        timeout=60,
    )


@pytest.fixture(params=list(VALUES))
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render(*VALUES[request.param])) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint(values: str) -> None:
    result = helm("lint", str(CHART_DIR), "--strict", *VALUES[values])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", list(VALUES))
def test_rendered_chart_is_valid_kubernetes(values: str, tmp_path: Path) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(render(*VALUES[values]))
    result = kubeconform(manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


def test_kubeconform_really_validates(tmp_path: Path) -> None:
    """An unknown field deep in a pod spec is refused: the schemas are in use."""
    docs = [doc for doc in yaml.safe_load_all(render()) if doc]
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    result = kubeconform(manifest)
    assert result.returncode == 1
    assert "httpGett" in result.stdout


def test_every_container_has_probes_resources_and_runs_as_non_root(manifests: list[dict[str, Any]]) -> None:
    for name, deployment in by_kind(manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert "readinessProbe" in container, name
            if container["name"] != "beat":  # beat's loop is Celery's: it exits when it fails
                assert "livenessProbe" in container, name
            if container["name"] == "web":
                assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
                assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
                assert container["startupProbe"]["httpGet"]["path"] == "/health/live"


def test_relays_and_consumers_live_on_their_heartbeat_and_are_ready_with_their_dependencies(
    manifests: list[dict[str, Any]],
) -> None:
    """A broker outage must not restart every relay and consumer: liveness reads the
    loop's heartbeat only; the dependency checks are the readiness probe."""
    checked = 0
    for deployment in by_kind(manifests, "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["name"] in {"relay", "consumer"}:
                kind = container["name"]
                assert container["livenessProbe"]["exec"]["command"] == [
                    "python",
                    "-m",
                    "comptoir.probe",
                    "live",
                    kind,
                ]
                assert container["readinessProbe"]["exec"]["command"] == [
                    "python",
                    "-m",
                    "comptoir.probe",
                    "ready",
                    kind,
                ]
                checked += 1
    assert checked == 9  # five relays, four consumers


def test_web_and_gateway_have_services_and_disruption_budgets(manifests: list[dict[str, Any]]) -> None:
    services = by_kind(manifests, "Service")
    assert sorted(services) == sorted(
        [
            "api-gateway",
            "storefront",
            "user-service",
            "product-service",
            "order-service",
            "payment-service",
            "email-service",
        ]
    )
    budgets = by_kind(manifests, "PodDisruptionBudget")
    for name in services:
        assert name in budgets or f"{name}-web" in budgets, name
    for consumer in ("product", "order", "payment", "email"):
        assert f"{consumer}-service-consumer" in budgets


def test_gateway_and_consumers_autoscale(manifests: list[dict[str, Any]]) -> None:
    hpas = by_kind(manifests, "HorizontalPodAutoscaler")
    assert "api-gateway" in hpas
    deployments = by_kind(manifests, "Deployment")
    for hpa in hpas.values():
        target = hpa["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        assert "replicas" not in deployments[target]["spec"], "the HPA owns the replica count"


def test_consumer_autoscaling_defaults() -> None:
    docs = [doc for doc in yaml.safe_load_all(render()) if doc]
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert sorted(hpas) == sorted(
        [
            "api-gateway",
            "product-service-consumer",
            "order-service-consumer",
            "payment-service-consumer",
            "email-service-consumer",
        ]
    )
    partitions = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["platform"]["kafkaTopicPartitions"]
    for name in hpas:
        if name.endswith("-consumer"):
            assert hpas[name]["spec"]["maxReplicas"] <= partitions


def test_consumers_beyond_the_partitions_are_refused() -> None:
    result = helm(
        "template",
        "comptoir",
        str(CHART_DIR),
        "--kube-version",
        KUBERNETES_VERSION,
        "--set",
        "platform.kafkaTopicPartitions=3",
    )
    assert result.returncode == 1
    assert "above the topic partitions" in result.stderr


def test_beat_is_a_single_replica_and_migrations_are_jobs(manifests: list[dict[str, Any]]) -> None:
    deployments = by_kind(manifests, "Deployment")
    beats = {name: d for name, d in deployments.items() if name.endswith("-beat")}
    assert len(beats) == 4  # email_service has none: its worker sweeps
    assert "email-service-beat" not in beats
    for deployment in beats.values():
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    jobs = by_kind(manifests, "Job")
    assert sorted(jobs) == sorted(
        f"{s}-service-migrate" for s in ("user", "product", "order", "payment", "email")
    )
    for job in jobs.values():
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


def test_each_service_reads_only_its_own_secret(manifests: list[dict[str, Any]]) -> None:
    for name, deployment in by_kind(manifests, "Deployment").items():
        refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        if name == "storefront":
            owner = "storefront"
        else:
            service = name.split("-")[0]
            owner = f"{service}-{'gateway' if service == 'api' else 'service'}"
        # The gateway's Secret holds its Redis credentials: required like the others.
        secret: dict[str, Any] = {"name": f"{owner}-secrets"}
        assert refs == [{"configMapRef": {"name": f"{owner}-config"}}, {"secretRef": secret}], name


def test_a_service_image_tag_can_move_alone() -> None:
    docs = [doc for doc in yaml.safe_load_all(render("--set", "image.tags.order_service=1.4.2")) if doc]
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    assert images["order-service"] == "ghcr.io/comptoir/order_service:1.4.2"
    assert images["order-service-consumer"] == "ghcr.io/comptoir/order_service:1.4.2"
    assert images["product-service"] == "ghcr.io/comptoir/product_service:0.1.0"
