from typing import Any

import pytest

from comptoir.testing import TokenFactory
from tests.conftest import Api
from users.models import User

pytestmark = pytest.mark.django_db


def url(user_id: int) -> str:
    return f"/internal/users/{user_id}/"


def test_a_service_reads_a_user(api: Api, user: User, tokens: TokenFactory) -> None:
    response = api.get(url(user.pk), **api.bearer(tokens.service("order_service")))

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "is_active": True,
    }


def test_a_deactivated_user_is_reported_inactive(api: Api, make_user: Any, tokens: TokenFactory) -> None:
    ghost = make_user(is_active=False)

    response = api.get(url(ghost.pk), **api.bearer(tokens.service("order_service")))

    assert response.status_code == 200
    assert response.json()["is_active"] is False


def test_an_unknown_user_is_404(api: Api, tokens: TokenFactory) -> None:
    response = api.get(url(424242), **api.bearer(tokens.service("order_service")))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"


def test_anonymous_is_401(api: Api, user: User) -> None:
    response = api.get(url(user.pk))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("is_staff", [False, True], ids=["user", "staff"])
def test_end_user_tokens_are_403_even_for_their_own_id(
    api: Api, user: User, tokens: TokenFactory, is_staff: bool
) -> None:
    response = api.get(url(user.pk), **api.bearer(tokens.user(user.pk, is_staff=is_staff)))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "email" not in response.json()


def test_a_user_access_token_from_login_is_403(api: Api, user: User) -> None:
    access = api.login()["access"]

    assert api.get(url(user.pk), **api.bearer(access)).status_code == 403


@pytest.mark.parametrize("client_name", ["product_service", "payment_service", "api_gateway"])
def test_a_service_without_the_users_read_scope_is_403(
    api: Api, user: User, tokens: TokenFactory, client_name: str
) -> None:
    response = api.get(url(user.pk), **api.bearer(tokens.service(client_name)))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert response.json()["error"]["details"] == {
        "required_scope": "users:read",
        "client": client_name,
        "granted_scopes": [],
    }
    assert "email" not in response.json()
