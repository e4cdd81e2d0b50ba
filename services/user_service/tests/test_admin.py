from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client

from tests.conftest import PASSWORD, Api
from users.models import RefreshToken, ServiceClient, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, make_user: Any) -> Client:
    admin = User.objects.create_superuser("root@example.com", PASSWORD)
    client.force_login(admin)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/users/user/",
        "/admin/users/user/add/",
        "/admin/users/serviceclient/",
        "/admin/users/serviceclient/add/",
        "/admin/users/refreshtoken/",
    ],
)
def test_admin_pages_render(admin_client: Client, path: str) -> None:
    assert admin_client.get(path).status_code == 200


def test_admin_change_page_of_a_user_renders(admin_client: Client, user: User) -> None:
    assert admin_client.get(f"/admin/users/user/{user.pk}/change/").status_code == 200


def test_admin_creates_a_user_with_a_lowercased_email_and_hashed_password(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/users/user/add/",
        {
            "email": "New@Example.com",
            "full_name": "New Person",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.check_password(PASSWORD)


def test_admin_creates_a_service_client_with_a_hashed_secret(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/users/serviceclient/add/", {"name": "product_service", "is_active": "on", "secret": "abc-123"}
    )

    assert response.status_code == 302
    client = ServiceClient.objects.get(name="product_service")
    assert client.secret_hash != "abc-123"
    assert check_password("abc-123", client.secret_hash)


def test_admin_refuses_a_service_client_without_a_secret(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/users/serviceclient/add/", {"name": "product_service", "is_active": "on"}
    )

    assert response.status_code == 200
    assert not ServiceClient.objects.exists()


def test_admin_action_revokes_sessions(admin_client: Client, api: Api, user: User) -> None:
    refresh = api.login()["refresh"]
    row = RefreshToken.objects.get(user=user)

    response = admin_client.post(
        "/admin/users/refreshtoken/", {"action": "revoke", "_selected_action": [str(row.pk)]}
    )

    assert response.status_code == 302
    assert api.post("/api/users/auth/refresh/", {"refresh": refresh}).status_code == 401
