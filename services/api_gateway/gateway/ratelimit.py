"""Rate limits kept in Redis with the `limits` library.

Three budgets count every request: per user id for authenticated calls, per
client address for anonymous ones, and a stricter one per client address on the
login route (see `Limiter` for how busy keys are counted in batches). A fourth
counts failed logins per account, whatever address they come from: an account
past it is refused at the gateway until its window ends, which slows credential
stuffing spread over many addresses without one address locking others out.
When Redis cannot be reached the gateway lets traffic through (fail open) and
counts it in `gateway_rate_limit_errors_total`: losing the limiter must not
take the whole platform down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage, Storage
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


@dataclass
class _Lease:
    """Admissions a worker already counted in Redis for one key, to hand out locally."""

    tokens: int = 0
    expires: float = 0.0  # the tokens are used within their window, or dropped
    exact_until: float = 0.0  # after a refused batch: one counted hit per request


class Limiter:
    """`limits` on Redis, with batched counting for busy keys.

    A request is admitted only against a hit counted in Redis. For a limit of
    at least 100 per window, a worker counts a small batch at once (1 % of the
    limit, at most `batch_max`) and admits the batch's next requests without a
    round trip: a busy client costs one Redis call per batch instead of one per
    request. Nothing is admitted that Redis did not count, so a client can never
    exceed its limit; at worst it is refused up to one unused batch per worker
    early. When less than a batch is left, the key falls back to one counted hit
    per request for the rest of its window, so the last requests before the
    limit are exact. Small limits (login, the tests' 15/minute) are always exact.
    """

    MAX_KEYS = 50_000

    def __init__(self, config: RateLimitConfig, storage: Storage | None = None) -> None:
        self.config = config
        self.storage = storage or RedisStorage(
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
            "login_failures": parse_many(config.login_failures),
        }
        self._leases: dict[tuple[str, str, int], _Lease] = {}

    def batch_size(self, item: RateLimitItem) -> int:
        if self.config.strategy == "fixed-window":
            return 1  # limits' fixed window counts refused hits: a refused batch would burn budget
        return max(1, min(self.config.batch_max, item.amount // 100))

    async def retry_after(self, budget: str, identity: str) -> int | None:
        """Admits or refuses one request: None when admitted, else the seconds to wait."""
        now = time.monotonic()
        for index, item in enumerate(self.budgets[budget]):
            key = (budget, identity, index)
            lease = self._leases.get(key)
            if lease is not None and lease.tokens > 0 and now < lease.expires:
                lease.tokens -= 1
                continue
            size = self.batch_size(item)
            if lease is not None and now < lease.exact_until:
                size = 1
            try:
                # One deadline for the call (cheaper than redis-py's per-read socket timeout).
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    if await self.strategy.hit(item, budget, identity, cost=size):
                        if size > 1:
                            self._grant(key, size - 1, now + item.get_expiry())
                        continue
                    if size > 1:
                        self._store(key, _Lease(exact_until=now + item.get_expiry()))
                        if await self.strategy.hit(item, budget, identity):
                            continue
                    stats = await self.strategy.get_window_stats(item, budget, identity)
            except (StorageError, TimeoutError) as error:
                self._storage_failed(error)
                return None
            return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def exhausted(self, budget: str, identity: str) -> int | None:
        """Seconds until `identity` may try again when its budget is spent, else None
        (nothing is counted: see `count`)."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                for item in self.budgets[budget]:
                    if not await self.strategy.test(item, budget, identity):
                        stats = await self.strategy.get_window_stats(item, budget, identity)
                        return max(1, math.ceil(stats.reset_time - time.time()))
        except (StorageError, TimeoutError) as error:
            self._storage_failed(error)
        return None

    async def count(self, budget: str, identity: str) -> None:
        """Counts one event (e.g. a failed login) against `identity`'s budget."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                for item in self.budgets[budget]:
                    await self.strategy.hit(item, budget, identity)
        except (StorageError, TimeoutError) as error:
            self._storage_failed(error)

    @staticmethod
    def _storage_failed(error: Exception) -> None:
        RATE_LIMIT_ERRORS.inc()
        cause = error.storage_error if isinstance(error, StorageError) else error
        logger.warning(
            "rate limit storage unavailable; letting the request through",
            extra={"error.message": repr(cause)},
        )

    def _grant(self, key: tuple[str, str, int], tokens: int, expires: float) -> None:
        lease = self._leases.get(key)
        if lease is not None and time.monotonic() < lease.expires:
            # A concurrent request counted a batch too: keep both (none is lost).
            lease.tokens += tokens
            lease.expires = max(lease.expires, expires)
        else:
            self._store(key, _Lease(tokens=tokens, expires=expires))

    def _store(self, key: tuple[str, str, int], lease: _Lease) -> None:
        if len(self._leases) >= self.MAX_KEYS:
            now = time.monotonic()
            self._leases = {k: v for k, v in self._leases.items() if now < max(v.expires, v.exact_until)}
            if len(self._leases) >= self.MAX_KEYS:
                self._leases.clear()  # dropping leases only ever refuses early, never admits more
        self._leases[key] = lease

    async def ping(self) -> bool:
        try:
            return bool(await self.storage.check())
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False
