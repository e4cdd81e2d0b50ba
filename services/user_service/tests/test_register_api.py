from typing import Any

import pytest

from tests.conftest import PASSWORD, Api
from users.models import User

pytestmark = pytest.mark.django_db

REGISTER = "/api/users/register/"


def register(api: Api, **overrides: Any) -> Any:
    body = {"email": "grace@example.com", "password": PASSWORD, "full_name": "Grace Hopper", **overrides}
    return api.post(REGISTER, body)


def test_register_creates_an_account_with_a_hashed_password(api: Api) -> None:
    response = register(api, email="Grace@Example.COM")

    assert response.status_code == 201
    user = User.objects.get()
    assert response.json() == {"id": user.pk, "email": "grace@example.com", "full_name": "Grace Hopper"}
    assert (user.email, user.full_name, user.is_staff, user.is_superuser, user.is_active) == (
        "grace@example.com",
        "Grace Hopper",
        False,
        False,
        True,
    )
    assert user.password != PASSWORD
    assert user.check_password(PASSWORD)


def test_the_new_account_can_log_in(api: Api) -> None:
    register(api)

    assert api.login("grace@example.com", PASSWORD)["token_type"] == "Bearer"


def test_full_name_is_optional(api: Api) -> None:
    response = api.post(REGISTER, {"email": "grace@example.com", "password": PASSWORD})

    assert response.status_code == 201
    assert response.json()["full_name"] == ""


def test_register_ignores_privilege_fields(api: Api) -> None:
    response = register(api, is_staff=True, is_superuser=True, is_active=False, id=999)

    assert response.status_code == 201
    user = User.objects.get()
    assert user.pk != 999
    assert (user.is_staff, user.is_superuser, user.is_active) == (False, False, True)


@pytest.mark.parametrize("email", ["grace@example.com", "GRACE@example.com"])
def test_a_taken_email_is_409_email_taken(api: Api, make_user: Any, email: str) -> None:
    existing = make_user("grace@example.com", full_name="The first Grace")

    response = register(api, email=email, password="Another-password-77")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"
    assert response.json()["error"]["details"] == {"email": ["An account with this email already exists."]}
    assert list(User.objects.values_list("pk", "full_name")) == [(existing.pk, "The first Grace")]
    assert User.objects.get().check_password(PASSWORD)


@pytest.mark.parametrize(
    ("password", "messages"),
    [
        ("Sh0rt-pw", ["This password is too short. It must contain at least 10 characters."]),
        ("4815162342108", ["This password is entirely numeric."]),
        ("password1234", ["This password is too common."]),
        ("grace@example.com", ["The password is too similar to the email."]),
    ],
    ids=["too-short", "numeric", "common", "like-the-email"],
)
def test_a_weak_password_is_400_weak_password_on_the_password_field(
    api: Api, password: str, messages: list[str]
) -> None:
    response = register(api, password=password)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "weak_password"
    assert error["details"] == {"password": messages}
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, {"email": ["Enter a valid email address."]}),
        ({"password": PASSWORD}, {"email": ["This field is required."]}),
        ({"email": "grace@example.com"}, {"password": ["This field is required."]}),
    ],
    ids=["bad-email", "no-email", "no-password"],
)
def test_invalid_input_is_400_validation_error(
    api: Api, body: dict[str, Any], details: dict[str, Any]
) -> None:
    response = api.post(REGISTER, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"] == details
    assert not User.objects.exists()


def test_register_is_public_even_with_a_stale_token(api: Api) -> None:
    response = api.post(
        REGISTER,
        {"email": "grace@example.com", "password": PASSWORD},
        Authorization="Bearer expired.jwt.here",
    )

    assert response.status_code == 201
