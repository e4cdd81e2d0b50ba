"""The threads-pool worker's event loop is woken by callbacks its pool threads queue."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from celery.concurrency.prefork import TaskPool as PreforkTaskPool
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from kombu.asynchronous import Hub

from comptoir._celery import WakeOnThreadCallbacks


@pytest.fixture
def hub() -> Iterator[Hub]:
    loop = Hub()
    yield loop
    loop.close()


def _ready_fds(hub: Hub) -> set[int]:
    return {fd for fd, _ in hub.poller.poll(0) or ()}


def _from_another_thread(hub: Hub, callback: object) -> None:
    thread = threading.Thread(target=hub.call_soon, args=(callback,))
    thread.start()
    thread.join()


def test_a_callback_queued_by_a_pool_thread_wakes_the_loop_which_then_runs_it(hub: Hub) -> None:
    step = WakeOnThreadCallbacks(SimpleNamespace())
    step.start(SimpleNamespace(hub=hub, pool=ThreadTaskPool(limit=1)))
    ran: list[str] = []

    assert _ready_fds(hub) == set()  # nothing to wake it yet: the loop would sleep
    _from_another_thread(hub, lambda: ran.append("ack"))
    assert _ready_fds(hub) == {step._read_fd}

    loop = hub.create_loop()
    next(loop)  # one turn: the queued callback runs, the wake-up is read
    assert ran == ["ack"]
    assert _ready_fds(hub) == set()


def test_callbacks_queued_by_the_loop_s_own_thread_write_no_wake_up(hub: Hub) -> None:
    step = WakeOnThreadCallbacks(SimpleNamespace())
    step.start(SimpleNamespace(hub=hub, pool=ThreadTaskPool(limit=1)))
    hub.call_soon(lambda: None)
    assert _ready_fds(hub) == set()


def test_the_pipe_is_watched_again_after_the_loop_dropped_its_readers(hub: Hub) -> None:
    step = WakeOnThreadCallbacks(SimpleNamespace())
    parent = SimpleNamespace(hub=hub, pool=ThreadTaskPool(limit=1))
    step.start(parent)
    hub.reset()  # what the worker does when its broker connection is lost
    step.start(parent)  # the consumer's steps start again
    _from_another_thread(hub, lambda: None)
    assert _ready_fds(hub) == {step._read_fd}


def test_a_prefork_worker_is_left_alone(hub: Hub) -> None:
    call_soon = hub.call_soon
    step = WakeOnThreadCallbacks(SimpleNamespace())
    step.start(SimpleNamespace(hub=hub, pool=PreforkTaskPool(limit=1)))
    assert hub.call_soon == call_soon
    assert step._read_fd == -1
