"""kombu's Redis transport, with one Redis client per channel.

kombu's channel builds a new `redis.Redis` around its connection pool for every
command it sends outside its event loop: each task published and each late
acknowledgement (`conn_or_acquire`). Building one costs more than the command
(redis-py fills a table of response callbacks per instance): 4 % of a web
process that enqueues a task per request, 5 % of a mail worker. A client is a
thin handle on the pool and safe to share between threads, so the channel keeps
one per pool (a new one when the channel replaces its pool after a connection
error). Celery uses it for `redis://` brokers (`CELERY_BROKER_TRANSPORT`, set by
the chassis settings); everything else is kombu's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis

__all__ = ["Channel", "Transport"]


class Channel(redis.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared.connection_pool is not pool:
            shared = self._shared_client = self._create_client()  # type: ignore[attr-defined]
        yield shared


class Transport(redis.Transport):
    Channel = Channel
