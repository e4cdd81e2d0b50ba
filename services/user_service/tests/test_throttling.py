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
