"""The pieces with logic of their own, without processes: breaker, config, docs merge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.breaker import CircuitBreaker, State
from gateway.config import ConfigError, load_settings
from gateway.docs import merge_documents
from gateway.observability import ObservabilityMiddleware


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> State:
    return breaker.state  # read through a call: mypy would otherwise keep an earlier narrowing


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("svc", failure_threshold=3, reset_timeout_s=10, clock=clock)


def test_breaker_opens_after_consecutive_failures_only(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) is State.CLOSED
    assert breaker.allow()

    breaker.record_failure()

    assert state_of(breaker) is State.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == 10


def test_breaker_lets_one_trial_through_after_the_reset_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()

    clock.now += 0.2
    assert breaker.allow()
    assert state_of(breaker) is State.HALF_OPEN
    assert not breaker.allow()  # only one trial at a time

    breaker.record_success()
    assert state_of(breaker) is State.CLOSED
    assert breaker.allow()


def test_breaker_failed_trial_opens_again(breaker: CircuitBreaker, clock: FakeClock) -> None:
    changes: list[State] = []
    breaker.on_change = lambda name, state: changes.append(state)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()

    breaker.record_failure()

    assert state_of(breaker) is State.OPEN
    assert not breaker.allow()
    assert changes == [State.OPEN, State.HALF_OPEN, State.OPEN]


def test_breaker_trial_that_never_reports_frees_its_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    clock.now += 10

    assert breaker.allow()


def test_config_defaults_point_at_the_devstack_ports() -> None:
    settings = load_settings({})

    assert {name: u.url for name, u in settings.upstreams.items()} == {
        "user_service": "http://127.0.0.1:8001",
        "product_service": "http://127.0.0.1:8002",
        "order_service": "http://127.0.0.1:8003",
        "payment_service": "http://127.0.0.1:8004",
        "email_service": "http://127.0.0.1:8005",
    }
    assert settings.auth.jwks_url == "http://127.0.0.1:8001/api/users/auth/jwks/"
    assert settings.auth.issuer == "comptoir-user-service"
    assert settings.auth.audience == "comptoir"
    assert settings.rate_limit.redis_url == "redis://127.0.0.1:6380/0"
    route = settings.route_for("/api/products/7/")
    assert route is not None
    assert route.upstream == "product_service"
    assert settings.route_for("/internal/products/quote/") is None
    assert settings.is_public("GET", "/api/products/categories/")
    assert settings.is_public("POST", "/api/users/auth/login/")
    assert not settings.is_public("POST", "/api/products/")
    assert not settings.is_public("GET", "/api/users/me/")
    assert not settings.is_public("POST", "/api/users/auth/login/extra/")


def test_config_environment_overrides() -> None:
    settings = load_settings(
        {
            "PRODUCT_SERVICE_URL": "http://10.0.0.5:9000/",
            "GATEWAY_TIMEOUT_S": "3",
            "GATEWAY_ORDER_SERVICE_TIMEOUT_S": "7.5",
            "REDIS_URL": "redis://cache:6379/2",
            "GATEWAY_RATE_LIMIT_LOGIN": "2/minute",
            "GATEWAY_CORS_ORIGINS": "https://a.example, https://b.example",
            "GATEWAY_MAX_BODY_BYTES": "1234",
        }
    )

    assert settings.upstreams["product_service"].url == "http://10.0.0.5:9000"
    assert settings.upstreams["product_service"].timeout_s == 3
    assert settings.upstreams["order_service"].timeout_s == 7.5
    assert settings.rate_limit.redis_url == "redis://cache:6379/2"
    assert settings.rate_limit.login == "2/minute"
    assert settings.cors.allow_origins == ("https://a.example", "https://b.example")
    assert settings.max_body_bytes == 1234


def test_config_refuses_routes_outside_api(tmp_path: Path) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(
        "upstreams: {user_service: {url: 'http://x'}}\n"
        "routes: [{prefix: /internal/, upstream: user_service}]\n"
    )

    with pytest.raises(ConfigError, match="only /api/ paths are routed"):
        load_settings({"GATEWAY_CONFIG": str(config)})


def test_config_refuses_bad_numbers() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_RETRIES='many' is not an integer"):
        load_settings({"GATEWAY_RETRIES": "many"})


def _doc(paths: list[str], item: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "paths": {p: {"get": {"responses": {"200": {"$ref": "#/components/schemas/Item"}}}} for p in paths},
        "components": {"schemas": {"Item": item}},
    }


def test_merge_keeps_routed_paths_and_renames_clashing_components() -> None:
    merged = merge_documents(
        [
            ("user_service", ("/api/users/",), _doc(["/api/users/me/", "/internal/users/{id}/"], {"a": 1})),
            ("product_service", ("/api/products/",), _doc(["/api/products/", "/api/schema/"], {"b": 2})),
        ]
    )

    assert sorted(merged["paths"]) == ["/api/products/", "/api/users/me/"]
    assert merged["components"]["schemas"] == {"Item": {"a": 1}, "ProductServiceItem": {"b": 2}}
    assert merged["paths"]["/api/products/"]["get"]["responses"]["200"] == {
        "$ref": "#/components/schemas/ProductServiceItem"
    }
    assert merged["paths"]["/api/users/me/"]["get"]["responses"]["200"] == {
        "$ref": "#/components/schemas/Item"
    }


@pytest.mark.asyncio
async def test_an_unexpected_failure_is_a_plain_500_in_the_standard_body() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("secret internals")

    app = ObservabilityMiddleware(broken, access_log=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        response = await client.get("/api/anything/", headers={"X-Request-ID": "boom-1"})

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "An unexpected error occurred.",
            "details": {},
            "trace_id": "boom-1",
        }
    }
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == "boom-1"


def test_merge_adds_the_gateways_own_statuses_in_the_one_error_body() -> None:
    document = {
        "openapi": "3.0.3",
        "paths": {
            "/api/products/": {"get": {"responses": {"200": {"description": "Catalogue."}}}},
            "/api/orders/": {
                "post": {
                    "responses": {
                        "202": {"description": "Placed."},
                        "503": {"description": "The saga cannot start.", "content": {"application/json": {}}},
                    }
                }
            },
        },
    }
    merged = merge_documents(
        [("shop", ("/api/",), document)], is_public=lambda method, path: path == "/api/products/"
    )

    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    public = merged["paths"]["/api/products/"]["get"]["responses"]
    assert list(public) == ["200", "400", "413", "414", "429", "502", "503", "504"]
    assert public["413"]["content"] == error
    private = merged["paths"]["/api/orders/"]["post"]["responses"]
    assert list(private) == ["202", "400", "401", "413", "414", "429", "502", "503", "504"]
    assert private["401"]["content"] == error
    assert private["503"] == {"description": "The saga cannot start.", "content": {"application/json": {}}}
    assert merged["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]


def test_merge_prefixes_operation_ids_that_several_services_share() -> None:
    def document(area: str) -> dict[str, Any]:
        return {
            "paths": {
                f"/api/ops/{area}/events/": {"get": {"operationId": "ops_events", "responses": {}}},
                f"/api/{area}/": {"get": {"operationId": f"{area}_list", "responses": {}}},
            }
        }

    merged = merge_documents(
        [
            ("order_service", ("/api/orders/", "/api/ops/orders/"), document("orders")),
            ("email_service", ("/api/emails/", "/api/ops/emails/"), document("emails")),
        ],
        own_paths={"/api/ops/health/": {"get": {"operationId": "ops_health", "responses": {}}}},
    )

    ids = {path: item["get"]["operationId"] for path, item in merged["paths"].items()}
    assert ids == {
        "/api/emails/": "emails_list",
        "/api/ops/emails/events/": "email_service_ops_events",
        "/api/ops/health/": "ops_health",
        "/api/ops/orders/events/": "order_service_ops_events",
        "/api/orders/": "orders_list",
    }
