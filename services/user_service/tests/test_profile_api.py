from typing import Any

import pytest

from comptoir.testing import TokenFactory
from tests.conftest import Api
from users.models import User

pytestmark = pytest.mark.django_db

ME = "/api/users/me/"


def snapshot(user: User) -> tuple[Any, ...]:
    row = User.objects.get(pk=user.pk)
    return (row.email, row.full_name, row.is_staff, row.is_superuser, row.is_active, row.password)


def test_get_me_returns_my_profile(api: Api, user: User) -> None:
    access = api.login()["access"]

    response = api.get(ME, **api.bearer(access))

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "is_staff": False,
        "date_joined": user.date_joined.isoformat().replace("+00:00", "Z"),
    }


def test_patch_me_changes_my_full_name(api: Api, user: User) -> None:
    access = api.login()["access"]

    response = api.patch(ME, {"full_name": "Augusta Ada King"}, **api.bearer(access))

    assert response.status_code == 200
    assert response.json()["full_name"] == "Augusta Ada King"
    assert User.objects.get(pk=user.pk).full_name == "Augusta Ada King"


def test_patch_me_ignores_email_staff_and_active_flags(api: Api, user: User) -> None:
    access = api.login()["access"]
    before = snapshot(user)

    response = api.patch(
        ME,
        {
            "email": "root@example.com",
            "is_staff": True,
            "is_superuser": True,
            "is_active": False,
            "password": "Changed-password-99",
            "id": 999,
        },
        **api.bearer(access),
    )

    assert response.status_code == 200
    assert (response.json()["email"], response.json()["is_staff"], response.json()["id"]) == (
        "ada@example.com",
        False,
        user.pk,
    )
    assert snapshot(user) == before


def test_patch_me_with_a_staff_flag_only_changes_nothing(api: Api, user: User, tokens: TokenFactory) -> None:
    before = snapshot(user)

    response = api.patch(ME, {"is_staff": True}, **api.bearer(tokens.user(user.pk)))

    assert response.status_code == 200
    assert snapshot(user) == before


def test_a_too_long_full_name_is_400_and_changes_nothing(api: Api, user: User, tokens: TokenFactory) -> None:
    before = snapshot(user)

    response = api.patch(ME, {"full_name": "x" * 201}, **api.bearer(tokens.user(user.pk)))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"] == {
        "full_name": ["Ensure this field has no more than 200 characters."]
    }
    assert snapshot(user) == before


# --- authorization matrix -----------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "patch"])
def test_anonymous_is_401(api: Api, user: User, method: str) -> None:
    before = snapshot(user)

    response = api.get(ME) if method == "get" else api.patch(ME, {"full_name": "Hacked"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert snapshot(user) == before


@pytest.mark.parametrize("method", ["get", "patch"])
def test_a_service_token_is_403(api: Api, user: User, tokens: TokenFactory, method: str) -> None:
    before = snapshot(user)
    header = api.bearer(tokens.service("order_service"))

    response = api.get(ME, **header) if method == "get" else api.patch(ME, {"full_name": "Hacked"}, **header)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert snapshot(user) == before


def test_another_user_only_ever_reaches_their_own_profile(
    api: Api, make_user: Any, tokens: TokenFactory
) -> None:
    ada = make_user("ada@example.com")
    bob = make_user("bob@example.com", full_name="Bob")
    before = snapshot(ada)

    response = api.patch(ME, {"full_name": "Not Ada"}, **api.bearer(tokens.user(bob.pk)))

    assert response.status_code == 200
    assert response.json()["id"] == bob.pk
    assert snapshot(ada) == before


def test_staff_reach_their_own_profile(api: Api, make_user: Any, tokens: TokenFactory) -> None:
    staff = make_user("staff@example.com", is_staff=True)

    response = api.get(ME, **api.bearer(tokens.user(staff.pk, is_staff=True)))

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["is_staff"]) == (staff.pk, True)


@pytest.mark.parametrize("method", ["get", "patch"])
def test_a_deactivated_account_is_404_and_unchanged(
    api: Api, make_user: Any, tokens: TokenFactory, method: str
) -> None:
    ghost = make_user(is_active=False)
    before = snapshot(ghost)
    header = api.bearer(tokens.user(ghost.pk))

    response = api.get(ME, **header) if method == "get" else api.patch(ME, {"full_name": "Back"}, **header)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"
    assert snapshot(ghost) == before


def test_a_token_for_a_deleted_account_is_404(api: Api, tokens: TokenFactory) -> None:
    response = api.get(ME, **api.bearer(tokens.user(424242)))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"
