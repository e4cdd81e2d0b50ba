from typing import Any

import pytest

from tests.conftest import SERVICE_SECRET, Api
from tests.support import decode_with_jwks

pytestmark = pytest.mark.django_db

SERVICE_TOKEN = "/internal/users/auth/service-token/"


def obtain(api: Api, client_id: str = "order_service", client_secret: str = SERVICE_SECRET) -> Any:
    return api.post(SERVICE_TOKEN, {"client_id": client_id, "client_secret": client_secret})


def test_client_credentials_yield_a_short_service_token(api: Api, make_service_client: Any) -> None:
    make_service_client("order_service")

    response = obtain(api)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    claims = decode_with_jwks(
        body["access_token"], api.get("/api/users/auth/jwks/").json(), audience="comptoir-internal"
    )
    assert {k: v for k, v in claims.items() if k not in {"iat", "exp", "jti"}} == {
        "iss": "comptoir-user-service",
        "aud": "comptoir-internal",
        "sub": "service:order_service",
        "token_use": "service",
        "scope": "payments:audit payments:charge payments:refund products:quote stock:audit stock:commit "
        "stock:read stock:release stock:reserve users:read",
    }
    assert claims["exp"] - claims["iat"] == 300


@pytest.mark.parametrize(
    ("client_name", "scope"),
    [("email_service", "users:read"), ("payment_service", ""), ("product_service", "")],
)
def test_each_client_gets_the_scopes_configured_for_it(
    api: Api, make_service_client: Any, client_name: str, scope: str
) -> None:
    make_service_client(client_name)

    token = obtain(api, client_name).json()["access_token"]

    claims = decode_with_jwks(token, api.get("/api/users/auth/jwks/").json(), audience="comptoir-internal")
    assert claims["scope"] == scope


def test_the_scopes_come_from_the_setting_when_a_deployment_sets_it(
    api: Api, make_service_client: Any, settings: Any
) -> None:
    settings.SERVICE_CLIENT_SCOPES = {"email_service": ["users:read", "emails:send"]}
    make_service_client("email_service")

    token = obtain(api, "email_service").json()["access_token"]

    claims = decode_with_jwks(token, api.get("/api/users/auth/jwks/").json(), audience="comptoir-internal")
    assert claims["scope"] == "emails:send users:read"


def test_the_token_endpoint_is_not_under_the_public_api(api: Api, make_service_client: Any) -> None:
    make_service_client("order_service")

    response = api.post(
        "/api/users/auth/service-token/", {"client_id": "order_service", "client_secret": SERVICE_SECRET}
    )

    assert response.status_code == 404
    assert "access_token" not in response.json()


def test_the_service_token_opens_internal_endpoints_and_not_user_ones(
    api: Api, make_service_client: Any, user: Any
) -> None:
    make_service_client("order_service")
    header = api.bearer(obtain(api).json()["access_token"])

    assert api.get(f"/internal/users/{user.pk}/", **header).status_code == 200
    assert api.get("/api/users/me/", **header).status_code == 403


@pytest.mark.parametrize(
    ("client_id", "client_secret"),
    [("order_service", "wrong-secret"), ("no_such_service", SERVICE_SECRET)],
    ids=["wrong-secret", "unknown-client"],
)
def test_bad_client_credentials_are_401_invalid_client(
    api: Api, make_service_client: Any, client_id: str, client_secret: str
) -> None:
    make_service_client("order_service")

    response = obtain(api, client_id, client_secret)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_client"
    assert "access_token" not in response.json()


def test_a_disabled_client_is_401(api: Api, make_service_client: Any) -> None:
    make_service_client("order_service", active=False)

    response = obtain(api)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_client"


def test_missing_credentials_are_a_validation_error(api: Api) -> None:
    response = api.post(SERVICE_TOKEN, {"client_id": "order_service"})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"client_secret": ["This field is required."]}


def test_the_secret_is_stored_hashed(make_service_client: Any) -> None:
    client = make_service_client("order_service")

    assert SERVICE_SECRET not in client.secret_hash
    assert client.secret_hash.startswith("md5$")  # the tests' fast hasher; PBKDF2 otherwise


def test_a_secret_is_stretched_once_per_process_and_again_when_it_changes(
    api: Api, make_service_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from users import services

    make_service_client("order_service")
    checks: list[str] = []
    real_check = services.check_password

    def counting_check(password: str, encoded: str) -> bool:
        checks.append(password)
        return real_check(password, encoded)

    monkeypatch.setattr(services, "check_password", counting_check)
    monkeypatch.setattr(services, "_verified_secrets", {})

    assert [obtain(api).status_code for _ in range(3)] == [200, 200, 200]
    assert checks == [SERVICE_SECRET]
    # A wrong secret is always checked for real, and refused.
    assert obtain(api, client_secret="wrong-secret").status_code == 401
    assert checks == [SERVICE_SECRET, "wrong-secret"]

    services.service_client_set(name="order_service", secret="a-new-secret-for-order-service")
    assert obtain(api).status_code == 401  # the old secret no longer opens anything
    assert obtain(api, client_secret="a-new-secret-for-order-service").status_code == 200
    assert checks[-2:] == [SERVICE_SECRET, "a-new-secret-for-order-service"]
