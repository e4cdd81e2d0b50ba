from typing import Any

import pytest

from tests.conftest import PASSWORD, SERVICE_SECRET, Api
from users.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict_rates(settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "login": "3/minute",
            "register": "2/minute",
            "service_token": "2/minute",
        },
    }


def test_the_default_login_rate_is_ten_a_minute(settings: Any) -> None:
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"] == "10/minute"


@pytest.mark.usefixtures("strict_rates")
def test_login_is_throttled_per_client_address(api: Api, user: User) -> None:
    body = {"email": "ada@example.com", "password": "Wrong-password-42"}
    statuses = [api.post("/api/users/auth/login/", body).status_code for _ in range(3)]

    throttled = api.post("/api/users/auth/login/", {"email": "ada@example.com", "password": PASSWORD})

    assert statuses == [401, 401, 401]
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 61
    # Another client (as the gateway reports it) still gets in.
    other = api.post(
        "/api/users/auth/login/",
        {"email": "ada@example.com", "password": PASSWORD},
        X_Forwarded_For="203.0.113.9",
    )
    assert other.status_code == 200


@pytest.mark.usefixtures("strict_rates")
def test_register_is_throttled(api: Api) -> None:
    statuses = [
        api.post("/api/users/register/", {"email": f"u{n}@example.com", "password": PASSWORD}).status_code
        for n in range(3)
    ]

    assert statuses == [201, 201, 429]
    assert User.objects.count() == 2


@pytest.mark.usefixtures("strict_rates")
def test_service_token_is_throttled(api: Api, make_service_client: Any) -> None:
    make_service_client("order_service")
    body = {"client_id": "order_service", "client_secret": SERVICE_SECRET}

    statuses = [api.post("/internal/users/auth/service-token/", body).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_service_tokens_are_not_held_to_the_per_user_rate(
    api: Api, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comptoir._throttling import EndUserRateThrottle, throttle_redis
    from users.services import service_client_set

    # A day-long window: the three requests below never straddle its edge.
    monkeypatch.setattr(EndUserRateThrottle, "THROTTLE_RATES", {"user": "2/day"})
    # Counters of an earlier run of this suite (user ids restart with the test database).
    for pattern in (f"user_service:throttle_user_user:{user.pk}:*", "user_service:throttle_user_service:*"):
        for key in throttle_redis().scan_iter(match=pattern):
            throttle_redis().delete(key)
    service_client_set(name="order_service", secret=SERVICE_SECRET)
    token = api.post(
        "/internal/users/auth/service-token/", {"client_id": "order_service", "client_secret": SERVICE_SECRET}
    ).json()["access_token"]

    internal = [api.get(f"/internal/users/{user.pk}/", **api.bearer(token)).status_code for _ in range(4)]
    access = api.post("/api/users/auth/login/", {"email": user.email, "password": PASSWORD}).json()["access"]
    mine = [api.get("/api/users/me/", **api.bearer(access)).status_code for _ in range(3)]

    assert internal == [200, 200, 200, 200]
    assert mine == [200, 200, 429]
    # Counted in Redis for this user and window only; nothing for the service.
    assert list(throttle_redis().scan_iter(match="user_service:throttle_user_service:*")) == []
