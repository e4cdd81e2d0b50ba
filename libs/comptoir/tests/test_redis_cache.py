"""The chassis' Redis cache keeps one Redis client per connection pool
(comptoir._redis_cache), against the devstack's Redis."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import redis
from django.core.cache import caches

from comptoir._redis_cache import RedisCache


@pytest.fixture
def built_clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every Redis client built from here on."""
    built: list[Any] = []
    init = redis.Redis.__init__

    def counting(self: redis.Redis, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    return built


def _cache() -> RedisCache:
    """A cache on the default cache's Redis with keys of its own."""
    default: Any = caches["default"]
    return RedisCache(default._servers, {"KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}"})


def test_the_default_cache_is_the_backend_with_one_client_per_pool() -> None:
    assert isinstance(caches["default"], RedisCache)


def test_cache_operations_share_one_client(built_clients: list[Any]) -> None:
    cache = _cache()
    try:
        cache.set("a", 1)
        assert cache.add("a", 2) is False
        assert cache.get("a") == 1
        cache.set_many({"b": 2, "c": 3})
        assert cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3}
        assert cache.incr("b") == 3
        cache.delete_many(["a", "b", "c"])
        assert cache.get("a", "gone") == "gone"
        # Django's own client builds one per operation here: eleven.
        assert len(built_clients) == 1
    finally:
        cache.delete_many(["a", "b", "c"])  # not clear(): that empties the whole Redis database


def test_threads_share_the_client_and_see_each_others_writes(built_clients: list[Any]) -> None:
    cache = _cache()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                cache.set(f"{n}-{i}", i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    try:
        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert cache.get_many([f"{n}-19" for n in range(4)]) == {f"{n}-19": 19 for n in range(4)}
        assert len({id(client) for client in built_clients}) == 1
    finally:
        cache.delete_many([f"{n}-{i}" for n in range(4) for i in range(20)])
