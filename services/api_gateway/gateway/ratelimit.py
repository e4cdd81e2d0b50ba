"""Rate limits kept in Redis with the `limits` library.

Three budgets: per user id for authenticated calls, per client address for
anonymous ones, and a stricter one per client address on the login route.
When Redis cannot be reached the gateway lets traffic through (fail open) and
counts it in `gateway_rate_limit_errors_total`: losing the limiter must not
take the whole platform down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError

from .config import RateLimitConfig
from .metrics import RATE_LIMIT_ERRORS

logger = logging.getLogger("gateway.ratelimit")
CHECK_TIMEOUT_S = 0.5

_STRATEGIES: dict[str, type[RateLimiter]] = {
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
}


class Limiter:
    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self.storage = RedisStorage(
            f"async+{config.redis_url}",
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=config.key_prefix,
            socket_connect_timeout=CHECK_TIMEOUT_S,
        )
        self.strategy = _STRATEGIES[config.strategy](self.storage)
        self.budgets: dict[str, list[RateLimitItem]] = {
            "user": parse_many(config.authenticated),
            "ip": parse_many(config.anonymous),
            "login": parse_many(config.login),
        }

    async def retry_after(self, budget: str, identity: str) -> int | None:
        """Counts one hit; None when allowed, else the seconds to wait before retrying."""
        for item in self.budgets[budget]:
            try:
                # One deadline for the call (cheaper than redis-py's per-read socket timeout).
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    if await self.strategy.hit(item, budget, identity):
                        continue
                    stats = await self.strategy.get_window_stats(item, budget, identity)
            except (StorageError, TimeoutError) as error:
                RATE_LIMIT_ERRORS.inc()
                cause = error.storage_error if isinstance(error, StorageError) else error
                logger.warning(
                    "rate limit storage unavailable; letting the request through",
                    extra={"error": repr(cause)},
                )
                return None
            return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def ping(self) -> bool:
        try:
            return bool(await self.storage.check())
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False
