"""The gateway's own routes: health, metrics, merged API docs."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from tests.assertions import assert_error
from tests.conftest import Platform, metrics_of


def test_live(gateway: httpx.Client) -> None:
    response = gateway.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "api_gateway"}


def test_ready_aggregates_every_upstream_and_redis(gateway: httpx.Client) -> None:
    response = gateway.get("/health/ready")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "service": "api_gateway",
        "checks": {
            "email_service": "ok",
            "order_service": "ok",
            "payment_service": "ok",
            "product_service": "ok",
            "user_service": "ok",
            "redis": "ok",
        },
        "failed": [],
    }


def test_merged_openapi_has_every_public_path_and_no_internal_one(gateway: httpx.Client) -> None:
    response = gateway.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert sorted(document["paths"]) == [
        "/api/emails/",
        "/api/emails/{id}/",
        # The gateway's own operations routes.
        "/api/ops/health/",
        "/api/ops/metrics/",
        "/api/ops/traces/",
        "/api/ops/traces/{trace_id}",
        "/api/orders/",
        "/api/orders/{id}/",
        "/api/payments/",
        "/api/payments/{id}/",
        "/api/products/",
        "/api/products/{id}/",
        "/api/users/",
        "/api/users/{id}/",
    ]
    schemas = document["components"]["schemas"]
    # Same name, different shape in two services: the later one is renamed, its refs follow.
    assert schemas["Item"] == {"type": "object", "properties": {"accounts_field": {"type": "string"}}}
    assert schemas["ProductServiceItem"] == {
        "type": "object",
        "properties": {"catalog_field": {"type": "string"}},
    }
    product_list = document["paths"]["/api/products/"]["get"]["responses"]["200"]
    assert product_list["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProductServiceItem"
    }
    assert schemas["Shared"] == {"type": "object", "properties": {"id": {"type": "integer"}}}
    assert "ProductServiceShared" not in schemas
    assert "x-unavailable-services" not in document["info"]


def test_docs_page_points_at_the_merged_document(gateway: httpx.Client) -> None:
    response = gateway.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '"/docs/assets/init.js"' in response.text
    assert "script-src 'self';" in response.headers["content-security-policy"]
    init = gateway.get("/docs/assets/init.js")
    assert init.status_code == 200
    assert '"/openapi.json"' in init.text


def test_docs_page_is_self_hosted(gateway: httpx.Client) -> None:
    """Swagger UI comes from the gateway itself (npm's swagger-ui-dist): no other host is
    named in the page, its scripts, styles or policy, and each asset is served."""
    page = gateway.get("/docs")
    policy = page.headers["content-security-policy"]
    sources = {word for directive in policy.split(";") for word in directive.split()[1:]}
    assert sources <= {"'self'", "'none'", "data:"}, policy
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert referenced, page.text
    for url in referenced:
        assert url.startswith("/"), f"{url} is not on the gateway"
        asset = gateway.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
    bundle = gateway.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle.text
    assert gateway.get("/docs/assets/package.json").status_code == 404
    assert gateway.get("/docs/assets/..%2Fpackage.json").status_code == 404


def test_metrics_count_requests_latency_and_breaker_state(gateway: httpx.Client, platform: Platform) -> None:
    gateway.get("/api/products/")

    text = metrics_of(platform.gateway_url)

    assert 'gateway_requests_total{method="GET",route="/api/products/",status="200"}' in text
    assert 'gateway_request_duration_seconds_bucket{le="0.1",route="/api/products/"}' in text
    assert 'gateway_circuit_breaker_state{upstream="product_service"}' in text
    assert "gateway_upstream_errors_total" in text


def test_access_log_is_one_json_line_per_request(gateway: httpx.Client, platform: Platform) -> None:
    gateway.get("/api/products/", headers={"X-Request-ID": "logged-once"})

    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not lines:
        for raw in platform.log.read_text().splitlines():
            if raw.startswith("{") and '"logged-once"' in raw:
                lines.append(json.loads(raw))
        time.sleep(0.05)
    [line] = [entry for entry in lines if entry.get("log") == {"logger": "gateway.access"}]
    assert line["message"] == "GET /api/products/ 200"
    assert line["log.level"] == "info"
    assert line["ecs.version"] == "1.6.0"
    assert line["service"] == {"name": "api_gateway"}
    assert line["http"]["request"] == {"id": "logged-once", "method": "GET"}
    assert line["http"]["response"]["status_code"] == 200
    assert line["url"] == {"path": "/api/products/"}
    assert line["labels"] == {"route": "/api/products/", "upstream": "product_service"}
    assert isinstance(line["event"]["duration"], int)
    assert line["event"]["duration"] > 0
    assert len(line["trace"]["id"]) == 32
    assert len(line["span"]["id"]) == 16


def test_metrics_are_not_served_on_the_public_port(gateway: httpx.Client, request_id: str) -> None:
    response = gateway.get("/metrics", headers={"X-Request-ID": request_id})

    assert_error(response, 404, "not_found", request_id)
    assert "gateway_requests_total" not in response.text


def test_wrong_method_on_an_own_route_is_405_in_the_standard_body(gateway: httpx.Client) -> None:
    response = gateway.post("/health/live")

    assert_error(response, 405, "method_not_allowed")
