"""Revoked access tokens (user_service's list in the real Redis) are refused by a real gateway."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.revocation import REVOKED_ACCESS_KEY
from tests.assertions import assert_error
from tests.conftest import REDIS_URL, Platform, start_gateway, stop
from tests.tokens import TokenFactory

PROTECTED = "/api/orders/"


@pytest.fixture
def revocation_list() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        client.delete(REVOKED_ACCESS_KEY)
        client.close()


def revoke(client: redis.Redis, member: str, until: float) -> None:
    """What user_service does (users/revocation.py): list the entry, then announce it."""
    client.zadd(REVOKED_ACCESS_KEY, {member: until})
    client.publish(REVOKED_ACCESS_KEY, f"{member} {until:.0f}")


def status_once_heard(gateway: httpx.Client, token: str, refused: bool) -> int:
    """The status of a call with `token`, once the gateway heard the announcement (or 2 s)."""
    end = time.monotonic() + 2
    while True:
        status = gateway.get(PROTECTED, headers={"Authorization": f"Bearer {token}"}).status_code
        if (status == 401) == refused or time.monotonic() > end:
            return status
        time.sleep(0.01)


def test_a_revoked_session_is_refused_and_other_sessions_are_not(
    gateway: httpx.Client, token_factory: TokenFactory, user_id: int, revocation_list: redis.Redis
) -> None:
    session, other = uuid.uuid4().hex, uuid.uuid4().hex
    token = token_factory.user(user_id, sid=session)
    assert status_once_heard(gateway, token, refused=False) == 200  # verified and remembered

    revoke(revocation_list, f"sid:{session}", time.time() + 60)

    assert status_once_heard(gateway, token, refused=True) == 401
    refused = gateway.get(PROTECTED, headers={**token_factory.header(token), "X-Request-ID": "revoked-1"})
    assert_error(refused, 401, "authentication_failed", "revoked-1")
    assert (
        gateway.get(
            PROTECTED, headers=token_factory.header(token_factory.user(user_id, sid=other))
        ).status_code
        == 200
    )


def test_a_revoked_token_id_is_refused(
    gateway: httpx.Client, token_factory: TokenFactory, user_id: int, revocation_list: redis.Redis
) -> None:
    jti = uuid.uuid4().hex
    token = token_factory.user(user_id, jti=jti)
    assert status_once_heard(gateway, token, refused=False) == 200

    revoke(revocation_list, f"jti:{jti}", time.time() + 60)

    assert status_once_heard(gateway, token, refused=True) == 401


def test_a_deactivated_user_keeps_no_token_issued_before(
    gateway: httpx.Client, token_factory: TokenFactory, user_id: int, revocation_list: redis.Redis
) -> None:
    now = int(time.time())
    before = token_factory.user(user_id, iat=now - 5)
    after = token_factory.user(user_id, iat=now)  # e.g. the account was opened again since

    revoke(revocation_list, f"sub:{user_id}:{now - 2}", time.time() + 60)

    assert status_once_heard(gateway, before, refused=True) == 401
    assert status_once_heard(gateway, after, refused=False) == 200


def test_an_expired_entry_refuses_nothing(
    gateway: httpx.Client, token_factory: TokenFactory, user_id: int, revocation_list: redis.Redis
) -> None:
    session = uuid.uuid4().hex
    revoke(revocation_list, f"sid:{session}", time.time() - 1)
    time.sleep(0.2)

    token = token_factory.user(user_id, sid=session)
    assert gateway.get(PROTECTED, headers=token_factory.header(token)).status_code == 200


def test_a_starting_gateway_reads_the_list_before_serving(
    platform: Platform,
    token_factory: TokenFactory,
    user_id: int,
    revocation_list: redis.Redis,
    tmp_path: Path,
) -> None:
    session = uuid.uuid4().hex
    revocation_list.zadd(REVOKED_ACCESS_KEY, {f"sid:{session}": time.time() + 60})  # listed, never announced
    env = {
        "USER_SERVICE_URL": platform.accounts.url,
        "ORDER_SERVICE_URL": platform.accounts.url,
        "EMAIL_SERVICE_URL": platform.accounts.url,
        "PRODUCT_SERVICE_URL": platform.catalog.url,
        "PAYMENT_SERVICE_URL": platform.payments.url,
        "GATEWAY_RATE_LIMIT_PREFIX": platform.redis_prefix + "-revocation",
    }
    process, url = start_gateway(env, tmp_path / "gateway.log")
    try:
        response = httpx.get(
            url + PROTECTED,
            headers=token_factory.header(token_factory.user(user_id, sid=session)),
            timeout=10,
        )
    finally:
        stop(process)
    assert_error(response, 401, "authentication_failed")
