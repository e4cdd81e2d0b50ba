"""The limiter's batching, against the `limits` library's own in-memory storage."""

from __future__ import annotations

import dataclasses

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage

from gateway.config import load_settings
from gateway.ratelimit import Limiter

pytestmark = pytest.mark.asyncio


def make_limiter(user_limit: str, *, batch_max: int = 64) -> Limiter:
    config = dataclasses.replace(
        load_settings({}).rate_limit,
        authenticated=user_limit,
        batch_max=batch_max,
        strategy="sliding-window-counter",
    )
    return Limiter(config, storage=MemoryStorage("async+memory://"))


async def counted(limiter: Limiter, user: str) -> int:
    """What the shared storage holds for the user: what every worker would see."""
    item = limiter.budgets["user"][0]
    stats = await limiter.strategy.get_window_stats(item, "user", user)
    return item.amount - stats.remaining


async def admitted(limiter: Limiter, user: str, requests: int) -> list[int | None]:
    return [await limiter.retry_after("user", user) for _ in range(requests)]


async def test_small_limits_count_every_request_and_refuse_the_one_over() -> None:
    limiter = make_limiter("15/minute")

    results = await admitted(limiter, "7", 16)

    assert results[:15] == [None] * 15
    assert results[15] is not None
    assert 1 <= results[15] <= 60
    assert await counted(limiter, "7") == 15


async def test_busy_keys_are_counted_in_batches() -> None:
    limiter = make_limiter("10000/minute")  # batch: 1 % of 10000, capped at 64

    assert await admitted(limiter, "7", 64) == [None] * 64
    assert await counted(limiter, "7") == 64
    assert await admitted(limiter, "7", 1) == [None]
    assert await counted(limiter, "7") == 128


async def test_batching_never_admits_more_than_the_limit() -> None:
    limiter = make_limiter("1000/minute")  # batch of 10
    item = parse("1000/minute")
    await limiter.strategy.hit(item, "user", "7", cost=995)  # other workers used most of it

    results = await admitted(limiter, "7", 8)

    # The batch of 10 no longer fits: one counted hit per request, exactly up to the limit.
    assert results[:5] == [None] * 5
    assert all(wait is not None for wait in results[5:])
    assert await counted(limiter, "7") == 1000


async def test_fixed_window_is_never_batched() -> None:
    # limits' fixed window counts refused hits too: a refused batch would burn budget.
    limiter = make_limiter("10000/minute")
    limiter = Limiter(
        dataclasses.replace(limiter.config, strategy="fixed-window"), storage=MemoryStorage("async+memory://")
    )

    await admitted(limiter, "7", 5)

    assert await counted(limiter, "7") == 5


async def test_batching_off_counts_each_request() -> None:
    limiter = make_limiter("10000/minute", batch_max=1)

    await admitted(limiter, "7", 5)

    assert await counted(limiter, "7") == 5


async def test_users_are_counted_apart() -> None:
    limiter = make_limiter("3/minute")

    first = await admitted(limiter, "7", 4)
    second = await admitted(limiter, "8", 1)

    assert first[:3] == [None, None, None]
    assert first[3] is not None
    assert second == [None]
