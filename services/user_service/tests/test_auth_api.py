import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from django.utils import timezone

from comptoir.testing import TokenFactory
from tests.conftest import PASSWORD, Api
from tests.support import decode_with_jwks
from users.keys import rotate_signing_key
from users.models import RefreshToken, User

pytestmark = pytest.mark.django_db

LOGIN = "/api/users/auth/login/"
REFRESH = "/api/users/auth/refresh/"
LOGOUT = "/api/users/auth/logout/"
JWKS = "/api/users/auth/jwks/"
ME = "/api/users/me/"


def test_login_returns_an_rs256_access_token_that_verifies_with_the_published_jwks(
    api: Api, user: User
) -> None:
    body = api.login()

    assert set(body) == {"access", "refresh", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 900)
    jwks = api.get(JWKS).json()
    header = jwt.get_unverified_header(body["access"])
    assert header == {"alg": "RS256", "kid": jwks["keys"][0]["kid"], "typ": "JWT"}
    claims = decode_with_jwks(body["access"], jwks, audience="comptoir")
    assert len(claims["sid"]) == 32  # the login session, which logout revokes
    assert {k: v for k, v in claims.items() if k not in {"iat", "exp", "jti", "sid"}} == {
        "iss": "comptoir-user-service",
        "aud": "comptoir",
        "sub": str(user.pk),
        "email": "ada@example.com",
        "is_staff": False,
        "token_use": "access",
    }
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 10
    assert len(claims["jti"]) == 32


def test_login_stores_only_the_hash_of_the_refresh_token(api: Api, user: User) -> None:
    body = api.login()

    row = RefreshToken.objects.get(user=user)
    assert row.token_hash != body["refresh"]
    assert len(row.token_hash) == 64
    assert row.revoked_at is None
    assert row.expires_at - row.created_at == timedelta(days=14)
    assert User.objects.get(pk=user.pk).last_login is not None


def test_access_token_lifetime_comes_from_settings(api: Api, user: User, settings: Any) -> None:
    settings.JWT_ACCESS_TOKEN_LIFETIME_S = 60

    body = api.login()

    claims = jwt.decode(body["access"], options={"verify_signature": False})
    assert (body["expires_in"], claims["exp"] - claims["iat"]) == (60, 60)


def test_the_access_token_opens_my_profile(api: Api, user: User) -> None:
    access = api.login()["access"]

    response = api.get(ME, **api.bearer(access))

    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"


def test_login_ignores_the_case_of_the_email(api: Api, user: User) -> None:
    response = api.post(LOGIN, {"email": "  ADA@Example.com ", "password": PASSWORD})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.com", "Wrong-password-42"), ("nobody@example.com", PASSWORD)],
    ids=["wrong-password", "unknown-email"],
)
def test_login_with_bad_credentials_is_401_and_opens_no_session(
    api: Api, user: User, email: str, password: str
) -> None:
    response = api.post(LOGIN, {"email": email, "password": password})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert not RefreshToken.objects.exists()
    assert User.objects.get(pk=user.pk).last_login is None


def test_a_deactivated_account_cannot_log_in(api: Api, make_user: Any) -> None:
    make_user(is_active=False)

    response = api.post(LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert not RefreshToken.objects.exists()


def test_login_without_a_password_is_a_validation_error(api: Api) -> None:
    response = api.post(LOGIN, {"email": "ada@example.com"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"] == {"password": ["This field is required."]}


def test_a_stale_bearer_token_does_not_block_login(api: Api, user: User) -> None:
    response = api.post(
        LOGIN, {"email": "ada@example.com", "password": PASSWORD}, Authorization="Bearer not-a-jwt"
    )

    assert response.status_code == 200


# --- refresh ----------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(api: Api, user: User) -> None:
    first = api.login()

    response = api.post(REFRESH, {"refresh": first["refresh"]})

    assert response.status_code == 200
    second = response.json()
    assert set(second) == {"access", "refresh", "token_type", "expires_in"}
    assert second["refresh"] != first["refresh"]
    assert second["access"] != first["access"]
    old, new = RefreshToken.objects.order_by("id")
    assert old.revoked_at is not None
    assert old.replaced_by_id == new.pk
    assert (new.revoked_at, new.family) == (None, old.family)
    assert api.get(ME, **api.bearer(second["access"])).status_code == 200


def test_reusing_a_rotated_refresh_token_is_401_and_revokes_the_whole_session(api: Api, user: User) -> None:
    first = api.login()
    second = api.post(REFRESH, {"refresh": first["refresh"]}).json()

    replay = api.post(REFRESH, {"refresh": first["refresh"]})

    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "refresh_token_reused"
    assert not RefreshToken.objects.filter(revoked_at__isnull=True).exists()
    # The legitimate holder's newer token died with it: both parties must log in again.
    after = api.post(REFRESH, {"refresh": second["refresh"]})
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_refresh_token"
    assert RefreshToken.objects.count() == 2


def test_reuse_revokes_only_that_session(api: Api, user: User) -> None:
    phone = api.login()
    laptop = api.login()
    api.post(REFRESH, {"refresh": phone["refresh"]})

    assert api.post(REFRESH, {"refresh": phone["refresh"]}).status_code == 401

    assert api.post(REFRESH, {"refresh": laptop["refresh"]}).status_code == 200


def test_an_unknown_refresh_token_is_401(api: Api, user: User) -> None:
    response = api.post(REFRESH, {"refresh": "made-up"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"


def test_an_expired_refresh_token_is_401_and_issues_nothing(api: Api, user: User) -> None:
    refresh = api.login()["refresh"]
    RefreshToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.post(REFRESH, {"refresh": refresh})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert RefreshToken.objects.count() == 1


def test_a_deactivated_account_cannot_refresh(api: Api, user: User) -> None:
    refresh = api.login()["refresh"]
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api.post(REFRESH, {"refresh": refresh})

    assert response.status_code == 401
    assert RefreshToken.objects.count() == 1


def test_refresh_carries_the_current_staff_flag(api: Api, user: User) -> None:
    refresh = api.login()["refresh"]
    User.objects.filter(pk=user.pk).update(is_staff=True)

    access = api.post(REFRESH, {"refresh": refresh}).json()["access"]

    assert jwt.decode(access, options={"verify_signature": False})["is_staff"] is True


# --- logout -----------------------------------------------------------------------


def test_logout_revokes_the_refresh_token(api: Api, user: User) -> None:
    refresh = api.login()["refresh"]

    response = api.post(LOGOUT, {"refresh": refresh})

    assert response.status_code == 204
    assert response.content == b""
    assert RefreshToken.objects.get().revoked_at is not None
    after = api.post(REFRESH, {"refresh": refresh})
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_refresh_token"


def test_logout_after_a_rotation_ends_the_session(api: Api, user: User) -> None:
    rotated = api.post(REFRESH, {"refresh": api.login()["refresh"]}).json()

    assert api.post(LOGOUT, {"refresh": rotated["refresh"]}).status_code == 204

    assert api.post(REFRESH, {"refresh": rotated["refresh"]}).status_code == 401
    assert not RefreshToken.objects.filter(revoked_at__isnull=True).exists()


def test_logout_with_an_unknown_token_is_204_and_revokes_nothing(api: Api, user: User) -> None:
    api.login()

    response = api.post(LOGOUT, {"refresh": "made-up"})

    assert response.status_code == 204
    assert RefreshToken.objects.get().revoked_at is None


def test_logout_without_a_token_is_a_validation_error(api: Api) -> None:
    response = api.post(LOGOUT, {})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"refresh": ["This field is required."]}


# --- keys, rotation, verification -----------------------------------------------------


def test_jwks_is_public_and_lists_public_keys_only(api: Api) -> None:
    response = api.get(JWKS)

    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}
    assert (key["kty"], key["alg"], key["use"], key["e"]) == ("RSA", "RS256", "sig", "AQAB")
    assert response.headers["Cache-Control"] == "public, max-age=60"


def test_a_token_signed_before_a_rotation_verifies_until_its_key_leaves_the_jwks(
    api: Api, user: User, fresh_keys_dir: Path
) -> None:
    before = api.login()["access"]
    old_kid = jwt.get_unverified_header(before)["kid"]

    new_key = rotate_signing_key()

    assert [k["kid"] for k in api.get(JWKS).json()["keys"]] == [new_key.kid, old_kid]
    assert api.get(ME, **api.bearer(before)).status_code == 200
    after = api.login()["access"]
    assert jwt.get_unverified_header(after)["kid"] == new_key.kid
    assert new_key.kid != old_kid
    decode_with_jwks(before, api.get(JWKS).json(), audience="comptoir")

    rotate_signing_key()  # the key that signed `before` is retired

    response = api.get(ME, **api.bearer(before))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert api.get(ME, **api.bearer(after)).status_code == 200


def test_an_expired_access_token_is_401(api: Api, user: User, settings: Any) -> None:
    settings.JWT_ACCESS_TOKEN_LIFETIME_S = -1
    access = api.login()["access"]

    response = api.get(ME, **api.bearer(access))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_token_from_a_key_this_service_never_published_is_401(api: Api, user: User) -> None:
    forged = TokenFactory().user(user.pk)

    response = api.get(ME, **api.bearer(forged))

    assert response.status_code == 401


def test_a_token_with_the_wrong_audience_is_401(api: Api, user: User, tokens: TokenFactory) -> None:
    token = tokens.user(user.pk, aud="someone-else")

    assert api.get(ME, **api.bearer(token)).status_code == 401
