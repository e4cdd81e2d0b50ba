"""Access tokens that stop working before they expire: logout, account deactivation.

An access token is checked by signature alone wherever it is presented, so
taking one back needs a list that the gateway reads: a Redis sorted set
(`REVOKED_ACCESS_KEY`, score: when the entry may be forgotten, i.e. when every
token it covers has expired), with each new entry also published on the channel
of the same name so that every gateway worker refuses the token at once.

Entries (the member text):

- `sid:<session id>`: every access token of one login session (logout);
- `jti:<token id>`: one access token (the one presented at logout);
- `sub:<user id>:<unix time>`: every access token of the user issued at or
  before that time (deactivation).

A Redis outage does not fail the logout or the deactivation (the refresh tokens
are revoked in the database either way); it is logged, and the access tokens
then live out their short lifetime (`JWT_ACCESS_TOKEN_LIFETIME_S`).
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

REVOKED_ACCESS_KEY = "comptoir:revoked-access"

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def _redis() -> redis.Redis:
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(
                settings.TOKEN_REVOCATION_REDIS_URL, socket_timeout=1, socket_connect_timeout=1
            )
        return _client


@receiver(setting_changed)
def _forget_client(*, setting: str, **kwargs: object) -> None:
    global _client
    if setting == "TOKEN_REVOCATION_REDIS_URL":
        _client = None


def _deny(member: str, until: float) -> bool:
    """Adds one entry, forgets the expired ones, tells the gateways; False when Redis failed."""
    now = time.time()
    if until <= now:
        return True  # what it covers has expired already
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.zadd(REVOKED_ACCESS_KEY, {member: until})
        pipe.zremrangebyscore(REVOKED_ACCESS_KEY, "-inf", now)
        pipe.publish(REVOKED_ACCESS_KEY, f"{member} {until:.0f}")
        pipe.execute()
    except redis.RedisError as error:
        logger.error(
            "access token revocation not recorded; the tokens stay valid until they expire",
            extra={"entry": member, "error": repr(error)},
        )
        return False
    return True


def _lifetime_end() -> float:
    """When every access token issued until now has expired."""
    return time.time() + settings.JWT_ACCESS_TOKEN_LIFETIME_S + 1


def session_access_revoke(*, session_id: str) -> bool:
    return _deny(f"sid:{session_id}", _lifetime_end())


def access_token_revoke(*, jti: str, expires_at: float) -> bool:
    return _deny(f"jti:{jti}", expires_at)


def user_access_revoke(*, user_id: int) -> bool:
    return _deny(f"sub:{user_id}:{int(time.time())}", _lifetime_end())
