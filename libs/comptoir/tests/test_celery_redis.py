"""Celery's Redis transport keeps one Redis client per channel (comptoir._celery_redis),
against the devstack's Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.conf import settings
from kombu import Connection

from comptoir._celery_redis import Channel


@pytest.fixture
def built_clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every synchronous Redis client a channel builds."""
    built: list[Any] = []
    create = Channel._create_client  # type: ignore[attr-defined]  # kombu's stubs leave it out

    def counting(self: Channel, asynchronous: bool = False) -> Any:
        client = create(self, asynchronous=asynchronous)
        if not asynchronous:
            built.append(client)
        return client

    monkeypatch.setattr(Channel, "_create_client", counting)
    return built


def _connection() -> Connection:
    return Connection(settings.CELERY_BROKER_URL, transport=settings.CELERY_BROKER_TRANSPORT)


def test_redis_brokers_use_the_transport_with_one_client_per_channel() -> None:
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    with _connection() as connection:
        transport: Any = connection.transport
        assert transport.Channel is Channel


def test_publishing_and_acknowledging_share_one_client(built_clients: list[Any]) -> None:
    with _connection() as connection:
        queue = connection.SimpleQueue(f"test.shared-client-{uuid.uuid4().hex[:8]}")
        try:
            for n in range(3):
                queue.put({"n": n})
            received = []
            for _ in range(3):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
            assert received == [0, 1, 2]
            with pytest.raises(queue.Empty):
                queue.get(block=False)
            # kombu's own channel builds one per command here: 3 puts, 4 gets, 3 acks.
            assert len(built_clients) == 1
        finally:
            queue.clear()
            queue.close()


def test_a_replaced_pool_gets_a_client_of_its_own(built_clients: list[Any]) -> None:
    with _connection() as connection:
        queue = connection.SimpleQueue(f"test.shared-client-{uuid.uuid4().hex[:8]}")
        try:
            queue.put({"n": 1})
            channel: Any = queue.channel
            old_pool = channel.pool
            channel._pool = None  # what the channel does after a connection error
            queue.put({"n": 2})
            assert [client.connection_pool for client in built_clients] == [old_pool, channel.pool]
            assert channel.pool is not old_pool
            assert sorted(queue.get(timeout=5).payload["n"] for _ in range(2)) == [1, 2]
        finally:
            queue.clear()
            queue.close()
