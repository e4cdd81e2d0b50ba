"""Logout and deactivation list the access tokens they end, in the real Redis the gateway reads."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import redis
from django.test import Client

from tests.conftest import Api
from tests.test_user_deactivated_event import deactivations
from users.models import RefreshToken, User
from users.revocation import REVOKED_ACCESS_KEY
from users.services import user_deactivate

LOGOUT = "/api/users/auth/logout/"


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def members(client: redis.Redis, *, scores: bool = False) -> list[Any]:
    """The revocation list as it is in Redis: members, or (member, until) pairs."""
    listed: list[Any] = client.zrange(REVOKED_ACCESS_KEY, 0, -1, withscores=scores)  # type: ignore[assignment]
    return listed


class Subscriber:
    """What a gateway worker hears on the revocation channel."""

    def __init__(self, client: redis.Redis) -> None:
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(REVOKED_ACCESS_KEY)
        first = self.pubsub.get_message(timeout=2)
        assert first is not None
        assert first["type"] == "subscribe"

    def heard(self, count: int) -> list[str]:
        messages: list[str] = []
        end = time.monotonic() + 5
        while len(messages) < count and time.monotonic() < end:
            message = self.pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] == "message":
                messages.append(str(message["data"]))
        self.pubsub.close()
        return messages


def test_logout_revokes_the_sessions_access_tokens_and_the_one_presented(
    api: Api, user: User, revocation_list: redis.Redis
) -> None:
    pair = api.login()
    claims = _claims(pair["access"])
    subscriber = Subscriber(revocation_list)

    assert api.post(LOGOUT, {"refresh": pair["refresh"]}, **api.bearer(pair["access"])).status_code == 204

    now = time.time()
    listed = dict(members(revocation_list, scores=True))
    session = f"sid:{claims['sid']}"
    token = f"jti:{claims['jti']}"
    assert set(listed) == {session, token}
    assert listed[token] == claims["exp"]  # kept exactly as long as the token could be used
    assert now + 15 * 60 < listed[session] <= now + 15 * 60 + 2  # the longest an access token lives
    heard = subscriber.heard(2)
    assert [line.split()[0] for line in heard] == [session, token]


def test_refreshed_tokens_belong_to_the_same_session(api: Api, user: User) -> None:
    pair = api.login()
    rotated = api.post("/api/users/auth/refresh/", {"refresh": pair["refresh"]}).json()

    assert _claims(rotated["access"])["sid"] == _claims(pair["access"])["sid"]
    assert _claims(api.login()["access"])["sid"] != _claims(pair["access"])["sid"]


def test_logout_with_an_invalid_access_token_revokes_only_the_session(
    api: Api, user: User, revocation_list: redis.Redis
) -> None:
    pair = api.login()

    response = api.post(LOGOUT, {"refresh": pair["refresh"]}, **api.bearer(pair["access"] + "x"))

    assert response.status_code == 204
    assert members(revocation_list) == [f"sid:{_claims(pair['access'])['sid']}"]


def test_logout_still_ends_the_session_when_redis_is_unreachable(
    api: Api, user: User, settings: Any, unused_tcp_port: int
) -> None:
    settings.TOKEN_REVOCATION_REDIS_URL = f"redis://127.0.0.1:{unused_tcp_port}/0"
    pair = api.login()

    response = api.post(LOGOUT, {"refresh": pair["refresh"]}, **api.bearer(pair["access"]))

    assert response.status_code == 204
    assert RefreshToken.objects.get().revoked_at is not None


def test_deactivation_closes_the_account_and_revokes_every_token_issued_before_it(
    api: Api, user: User, revocation_list: redis.Redis
) -> None:
    pair = api.login()
    before = int(time.time())

    assert user_deactivate(user_id=user.pk) is True

    user.refresh_from_db()
    assert user.is_active is False
    assert not RefreshToken.objects.filter(revoked_at__isnull=True).exists()
    [member] = members(revocation_list)
    kind, user_id, at = member.split(":")
    assert (kind, user_id) == ("sub", str(user.pk))
    assert before <= int(at) <= time.time()
    assert _claims(pair["access"])["iat"] <= int(at)  # the token it had is covered
    assert api.post("/api/users/auth/refresh/", {"refresh": pair["refresh"]}).status_code == 401
    assert user_deactivate(user_id=user.pk) is False  # nothing left to close


@pytest.mark.django_db
def test_unticking_active_in_the_admin_deactivates_the_account(
    client: Client, make_user: Any, revocation_list: redis.Redis
) -> None:
    staff = make_user("root@example.com", is_staff=True)
    staff.is_superuser = True
    staff.save()
    customer = make_user("bob@example.com")
    client.force_login(staff)

    response = client.post(
        "/admin/users/user/",
        {"action": "deactivate", "_selected_action": [customer.pk]},
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.is_active is False
    [member] = members(revocation_list)
    assert member.startswith(f"sub:{customer.pk}:")
    assert deactivations() == [(str(customer.pk), {"user_id": str(customer.pk)})]
