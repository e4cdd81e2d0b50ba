"""Access tokens revoked before they expire (logout, deactivation), refused at once.

user_service lists them in a Redis sorted set and publishes each new entry on the
channel of the same name (services/user_service/users/revocation.py has the
format). Every gateway worker keeps the list in memory: it subscribes first,
then loads the set (so no entry falls between the two), and applies what it
hears; a check is a dictionary lookup, no Redis call on the request path. When
the connection drops it reconnects and loads the set again. While Redis cannot
be reached the worker keeps what it knew and logs it: the tokens revoked in the
meantime live out their short lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger("gateway.revocation")

REVOKED_ACCESS_KEY = "comptoir:revoked-access"
RECONNECT_S = 1.0


class Revocations:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.tokens: dict[str, float] = {}  # jti -> until
        self.sessions: dict[str, float] = {}  # sid -> until
        self.users: dict[str, tuple[int, float]] = {}  # user id -> (revoked at, until)
        self.synced = False
        self.loaded = asyncio.Event()  # set once the list was read (the lifespan waits a little for it)
        self._failing = False
        self._pruned_at = time.monotonic()

    def revoked(self, claims: dict[str, Any]) -> bool:
        now = time.time()
        until = self.tokens.get(str(claims.get("jti")))
        if until is not None and until > now:
            return True
        until = self.sessions.get(str(claims.get("sid")))
        if until is not None and until > now:
            return True
        user = self.users.get(str(claims.get("sub")))
        return user is not None and user[1] > now and int(claims.get("iat", 0)) <= user[0]

    def apply(self, member: str, until: float) -> None:
        kind, _, value = member.partition(":")
        if kind == "jti":
            self.tokens[value] = until
        elif kind == "sid":
            self.sessions[value] = until
        elif kind == "sub":
            user_id, _, at = value.partition(":")
            try:
                revoked_at = int(at)
            except ValueError:
                logger.warning("revocation entry not understood", extra={"entry": member})
                return
            known = self.users.get(user_id)
            if known is None or known[0] <= revoked_at:
                self.users[user_id] = (revoked_at, until)
        else:
            logger.warning("revocation entry not understood", extra={"entry": member})
        if time.monotonic() - self._pruned_at > 60:
            self.forget_expired()

    def forget_expired(self) -> None:
        self._pruned_at = time.monotonic()
        now = time.time()
        self.tokens = {k: v for k, v in self.tokens.items() if v > now}
        self.sessions = {k: v for k, v in self.sessions.items() if v > now}
        self.users = {k: v for k, v in self.users.items() if v[1] > now}

    async def _load(self, client: aioredis.Redis) -> None:
        entries = await client.zrangebyscore(REVOKED_ACCESS_KEY, time.time(), "+inf", withscores=True)
        self.forget_expired()
        for member, until in entries:
            self.apply(member, until)
        self.synced = True
        self.loaded.set()
        if self._failing:
            logger.info("revocation list reachable again; reloaded")
        self._failing = False

    def _hear(self, data: str) -> None:
        member, _, until = data.rpartition(" ")
        try:
            self.apply(member, float(until))
        except ValueError:
            logger.warning("revocation entry not understood", extra={"entry": data})

    async def follow(self) -> None:
        """Runs for the worker's lifetime (a background task): subscribe, load, listen."""
        while True:
            client = aioredis.Redis.from_url(
                self.redis_url, decode_responses=True, socket_connect_timeout=2, health_check_interval=15
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(REVOKED_ACCESS_KEY)
                    await self._load(client)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._hear(str(message["data"]))
            except (RedisError, OSError) as error:
                if not self._failing:
                    logger.warning(
                        "revocation list unreachable; known revocations still apply",
                        extra={"error.message": repr(error)},
                    )
                self._failing = True
                self.synced = False
            finally:
                await client.aclose()
            await asyncio.sleep(RECONNECT_S)
