"""Per-caller request limits of the services (DRF throttles).

End users are limited per user id, anonymous callers per address. Service tokens
are not: a call from another service of the platform is caused by a request that
was already counted (at the gateway and here), so limiting it again would turn
one busy customer into `503 service token refused (429)` for everybody.

The per-user limit counts in fixed windows: one `INCR` + `EXPIRE` round trip to
Redis per request. DRF's own throttle keeps a sliding log of every request's
time in the cache, read, unpickled, grown and written back on each request (a
quarter of the CPU of a minimal request at the default 20,000/minute, and more
the busier the user). A fixed window lets a client reach twice the rate across a
window's edge; this limit is a backstop behind the gateway's, so that is fine.
When Redis does not answer, requests are let through (the gateway does the same).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle

from ._auth import Principal

if TYPE_CHECKING:
    from typing import Any

    from rest_framework.views import APIView

logger = logging.getLogger("comptoir.throttling")

_client_lock = threading.Lock()
_client: redis.Redis | None = None


def throttle_redis() -> redis.Redis:
    """This process's Redis client for the counters (settings.REDIS_URL)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        return _client


@receiver(setting_changed)
def _reset_client(*, setting: str, **kwargs: Any) -> None:
    global _client
    if setting == "REDIS_URL":
        with _client_lock:
            _client = None


class EndUserRateThrottle(UserRateThrottle):
    """The per-user limit (`user` rate) for end users, counted in fixed windows."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        user = request.user
        if isinstance(user, Principal) and user.is_service:
            return True
        limit, period = self.parse_rate(self.rate)
        if limit is None or period is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = time.time()
        window = int(now // period)
        self._retry_after = (window + 1) * period - now
        counter = f"{settings.COMPTOIR['SERVICE_NAME']}:{self.key}:{window}"
        try:
            pipe = throttle_redis().pipeline(transaction=False)
            pipe.incr(counter)
            pipe.expire(counter, period + 1)
            count = int(pipe.execute()[0])
        except redis.RedisError as error:
            logger.warning("rate limit not applied: Redis did not answer (%s)", type(error).__name__)
            return True
        return count <= limit

    def wait(self) -> float | None:
        retry_after: float | None = getattr(self, "_retry_after", None)
        return retry_after
