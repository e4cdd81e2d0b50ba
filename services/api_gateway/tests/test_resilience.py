"""Rate limits, timeouts, refused upstreams and the circuit breaker, against real processes."""

from __future__ import annotations

import time

import httpx

from tests.assertions import assert_error
from tests.conftest import BREAKER_RESET_S, LOGIN_LIMIT, UPSTREAM_TIMEOUT_S, USER_LIMIT, Platform
from tests.tokens import TokenFactory


def test_burst_over_the_user_limit_is_throttled_while_another_user_is_not(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int
) -> None:
    greedy = token_factory.header(token_factory.user(user_id))
    other = token_factory.header(token_factory.user(user_id + 10_000))

    statuses = [gateway.get("/api/orders/", headers=greedy).status_code for _ in range(USER_LIMIT)]
    throttled = gateway.get("/api/orders/", headers={**greedy, "X-Request-ID": "throttled-1"})
    unaffected = gateway.get("/api/orders/", headers=other)

    assert statuses == [200] * USER_LIMIT
    assert_error(throttled, 429, "throttled", "throttled-1")
    retry_after = int(throttled.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert throttled.json()["error"]["details"] == {"retry_after_s": retry_after}
    assert platform.accounts.seen("throttled-1") == []
    assert unaffected.status_code == 200


def test_login_has_a_stricter_limit_per_client_address(gateway: httpx.Client, platform: Platform) -> None:
    statuses = [
        gateway.post("/api/users/auth/login/", json={"email": "a@b.c", "password": "x"}).status_code
        for _ in range(LOGIN_LIMIT)
    ]
    throttled = gateway.post(
        "/api/users/auth/login/",
        json={"email": "a@b.c", "password": "x"},
        headers={"X-Request-ID": "login-throttled"},
    )
    other_public_route = gateway.get("/api/products/")

    assert statuses == [200] * LOGIN_LIMIT
    assert_error(throttled, 429, "throttled", "login-throttled")
    assert int(throttled.headers["retry-after"]) >= 1
    assert platform.accounts.seen("login-throttled") == []
    assert other_public_route.status_code == 200


def test_slow_upstream_answers_504_within_the_configured_timeout(gateway: httpx.Client) -> None:
    began = time.monotonic()
    response = gateway.get("/api/products/slow/", params={"sleep": "5"}, headers={"X-Request-ID": "slow-1"})
    elapsed = time.monotonic() - began

    assert_error(response, 504, "upstream_timeout", "slow-1")
    assert response.json()["error"]["details"] == {"upstream": "product_service"}
    assert UPSTREAM_TIMEOUT_S * 0.9 <= elapsed < UPSTREAM_TIMEOUT_S + 0.75


def test_service_errors_pass_through_unchanged(gateway: httpx.Client) -> None:
    response = gateway.get("/api/products/7/", params={"status": "409"})

    assert response.status_code == 409
    assert response.json()["stub"] == "catalog"


def test_large_responses_stream_through_whole(gateway: httpx.Client) -> None:
    size = 3 * 1024 * 1024 + 17
    with gateway.stream("GET", "/api/products/export/", params={"size": str(size)}) as response:
        received = sum(len(chunk) for chunk in response.iter_bytes())

    assert response.status_code == 200
    assert received == size


def test_killed_upstream_opens_the_breaker_then_recovers_without_a_gateway_restart(
    gateway: httpx.Client, platform: Platform, token_factory: TokenFactory, user_id: int
) -> None:
    auth = token_factory.header(token_factory.user(user_id))
    assert gateway.get("/api/payments/", headers=auth).status_code == 200

    platform.payments.kill()
    try:
        failures = []
        for attempt in range(5):
            began = time.monotonic()
            response = gateway.get("/api/payments/", headers={**auth, "X-Request-ID": f"down-{attempt}"})
            failures.append((response, time.monotonic() - began))
        # Only that service's routes fail: the others answer, and the gateway stays ready.
        other = gateway.get("/api/products/7/")
        ready = gateway.get("/health/ready")
    finally:
        platform.payments.start()

    assert other.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["failed"] == ["payment_service"]
    statuses = [response.status_code for response, _ in failures]
    # Refused: the service is down (503); 3 refused calls (each retried once) open the
    # breaker, which then answers at once.
    assert statuses == [503, 503, 503, 503, 503]
    assert_error(failures[0][0], 503, "upstream_unavailable", "down-0")
    assert failures[0][0].json()["error"]["details"] == {"upstream": "payment_service"}
    assert failures[0][0].headers["retry-after"] == "1"
    open_answer, open_elapsed = failures[3]
    assert_error(open_answer, 503, "upstream_unavailable", "down-3")
    assert open_answer.json()["error"]["details"] == {"upstream": "payment_service"}
    assert 1 <= int(open_answer.headers["retry-after"]) <= BREAKER_RESET_S + 1
    assert open_elapsed < 0.1

    # The stub is back on the same port; after the reset timeout one trial closes the breaker.
    auth = token_factory.header(token_factory.user(user_id + 20_000))
    deadline = time.monotonic() + BREAKER_RESET_S + 5
    recovered = None
    while time.monotonic() < deadline:
        response = gateway.get("/api/payments/", headers=auth)
        if response.status_code == 200:
            recovered = response
            break
        assert response.status_code == 503
        time.sleep(0.2)
    assert recovered is not None
    assert recovered.json()["stub"] == "payments"
    assert gateway.get("/api/payments/", headers=auth).status_code == 200
