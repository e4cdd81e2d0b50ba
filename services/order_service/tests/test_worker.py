"""The orchestrated saga through Redis and real `celery worker` processes:
orders placed over the API settle, and a worker SIGKILLed in the middle of a
charge is resumed by the sweeper without a second charge."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from comptoir.testing import TokenFactory
from orders.models import Order, OrderSaga, OrderStatus, SagaStep
from orders.orchestration import saga_sweep_stalled

from .conftest import ALICE, BOB, Upstreams
from .processes import ProcessRunner
from .stubs import TOKEN_PATH
from .support import event_summary, timeline, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SETTLE_TIMEOUT_S = 60.0
HAPPY = ["verify_user", "reserve_stock", "charge_payment", "confirm_order"]


@pytest.fixture
def workers(processes: ProcessRunner, upstreams: Upstreams, celery_test_queue: str) -> Callable[..., Any]:
    """Starts a worker on the session's queue, calling the stand-ins, with short saga timings."""
    processes.env.update(
        {
            "USER_SERVICE_URL": upstreams.users.url,
            "PRODUCT_SERVICE_URL": upstreams.products.url,
            "PAYMENT_SERVICE_URL": upstreams.payments.url,
            "SERVICE_TOKEN_URL": f"{upstreams.products.url}{TOKEN_PATH}",
            "SAGA_STALL_SECONDS": "2",
            "SAGA_RETRY_BACKOFF_S": "0.2",
            "SAGA_RETRY_BACKOFF_MAX_S": "1",
            "CELERY_VISIBILITY_TIMEOUT_S": "20",
        }
    )

    def start(threads: int = 0) -> Any:
        return processes.start_worker(celery_test_queue, threads=threads)

    return start


def _place(
    place_order: Callable[..., Any], tokens: TokenFactory, user_id: int, lines: list[tuple[int, int]]
) -> int:
    response = place_order(lines, headers=tokens.header(tokens.user(user_id)))
    assert response.status_code == 202, response.json()
    return int(response.json()["id"])


def _status(order_id: int) -> str:
    return Order.objects.get(pk=order_id).status


def test_orders_settle_through_a_real_worker(
    workers: Callable[[], Any], place_order: Callable[..., Any], tokens: TokenFactory, upstreams: Upstreams
) -> None:
    worker = workers()
    upstreams.payments.fail("charge", 3)  # one task-level retry on the way

    happy = _place(place_order, tokens, ALICE, [(1, 2)])
    broke = _place(place_order, tokens, BOB, [(2, 1)])

    wait_for(
        lambda: {_status(happy), _status(broke)} <= {OrderStatus.CONFIRMED, OrderStatus.CANCELLED},
        timeout_s=SETTLE_TIMEOUT_S,
        what=f"both orders to settle\n{worker.log_tail()}",
    )
    assert (_status(happy), _status(broke)) == (OrderStatus.CONFIRMED, OrderStatus.CANCELLED)
    assert [step for step, _, _ in timeline(happy)] == HAPPY
    assert timeline(broke)[2:] == [
        ("charge_payment", "failed", "insufficient_funds"),
        ("release_stock", "compensated", None),
        ("cancel_order", "succeeded", None),
    ]
    assert upstreams.payments.captured() == [str(happy)]
    assert upstreams.payments.wallets[ALICE] == Decimal("475.00")
    assert upstreams.payments.wallets[BOB] == Decimal("20.00")
    assert (upstreams.products.stock[1], upstreams.products.stock[2]) == (98, 100)
    assert sorted(e[0] for e in event_summary()) == ["order.cancelled", "order.confirmed"]
    assert worker.process.poll() is None


def test_a_worker_killed_mid_charge_is_resumed_by_the_sweeper_with_one_charge(
    workers: Callable[[], Any], place_order: Callable[..., Any], tokens: TokenFactory, upstreams: Upstreams
) -> None:
    first = workers()
    with upstreams.payments.hold("charge") as charge_arrived:
        order_id = _place(place_order, tokens, ALICE, [(1, 2)])
        assert charge_arrived.wait(timeout=SETTLE_TIMEOUT_S), first.log_tail()
        first.kill()
    # Released after the kill: the charge goes through upstream, its answer is lost.
    wait_for(lambda: upstreams.payments.captured() == [str(order_id)], timeout_s=10, what="the lost charge")
    saga = OrderSaga.objects.get(pk=order_id)
    assert (saga.current_step, saga.attempts) == ("charge_payment", 1)

    second = workers()
    wait_for(
        lambda: OrderSaga.objects.get(pk=order_id).stall_deadline < timezone.now(),
        timeout_s=10,
        what="the saga to count as stalled",
    )
    assert saga_sweep_stalled() == [order_id]

    wait_for(
        lambda: _status(order_id) == OrderStatus.CONFIRMED,
        timeout_s=SETTLE_TIMEOUT_S,
        what=f"the resumed saga\n{second.log_tail()}",
    )
    charges = upstreams.payments.calls("charge")
    assert len(charges) == 2
    assert {c.headers["Idempotency-Key"] for c in charges} == {str(order_id)}
    assert upstreams.payments.captured() == [str(order_id)]
    assert upstreams.payments.wallets[ALICE] == Decimal("475.00")
    assert [step for step, _, _ in timeline(order_id)] == HAPPY
    assert [e[0] for e in event_summary()] == ["order.confirmed"]


def test_the_reservations_of_sagas_running_together_go_in_one_batch_each_answered_alone(
    workers: Callable[..., Any], place_order: Callable[..., Any], tokens: TokenFactory, upstreams: Upstreams
) -> None:
    worker = workers(threads=8)
    with upstreams.products.hold("reserve") as reserve_arrived:
        first = _place(place_order, tokens, ALICE, [(1, 1)])
        assert reserve_arrived.wait(timeout=SETTLE_TIMEOUT_S), worker.log_tail()
        others = [_place(place_order, tokens, ALICE, [(1, 1)]) for _ in range(4)]
        # Each of the others claimed its reservation and waits behind the held one.
        waiting = OrderSaga.objects.filter(pk__in=others, current_step=SagaStep.RESERVE_STOCK, attempts=1)
        wait_for(
            lambda: waiting.count() == len(others),
            timeout_s=SETTLE_TIMEOUT_S,
            what=f"the other sagas to reach their reservation\n{worker.log_tail()}",
        )
        time.sleep(0.5)  # from the claim to the call: no statement in between

    orders = [first, *others]
    wait_for(
        lambda: all(_status(order_id) == OrderStatus.CONFIRMED for order_id in orders),
        timeout_s=SETTLE_TIMEOUT_S,
        what=f"every order to be confirmed\n{worker.log_tail()}",
    )
    # The held call went alone; the four behind it as one request.
    assert upstreams.products.batches == [4]
    # Each order reserved and charged once, as if every call had gone alone.
    assert sorted(int(c.body["order_id"]) for c in upstreams.products.calls("reserve")) == sorted(orders)
    assert sorted(int(c.body["order_id"]) for c in upstreams.payments.calls("charge")) == sorted(orders)
    assert upstreams.payments.captured() == sorted(str(order_id) for order_id in orders)
    assert upstreams.payments.wallets[ALICE] == Decimal("437.50")
    assert upstreams.products.stock[1] == 95
    for order_id in orders:
        assert [step for step, _, _ in timeline(order_id)] == HAPPY
