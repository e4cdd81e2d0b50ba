"""Kept customers (ORDER_CUSTOMER_CACHE_S): a user user_service found active
recently is not asked about again, in either saga mode, until the keep time runs
out or `user.deactivated` says the account closed. Real Redis (the devstack's),
under a key prefix of the test's own."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.utils import timezone

from comptoir.events import Envelope, current_version, handlers_for, validate_payload
from orders import (
    choreography,
    handlers,  # noqa: F401 - registers the handlers
    services,
)
from orders.customers import customer_forget, customer_verify
from orders.models import CancelReason, Customer, Order, OrderStatus
from orders.upstream import StepRefused

from .conftest import ALICE, BOB, INACTIVE_USER, Upstreams
from .support import timeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("upstreams")]


@pytest.fixture
def kept_customers(settings: Any) -> Iterator[None]:
    settings.ORDER_CUSTOMER_CACHE_S = 30
    settings.CACHES = {
        **settings.CACHES,
        "customers": {**settings.CACHES["customers"], "KEY_PREFIX": f"order_service-test-{uuid.uuid4().hex}"},
    }
    yield
    with contextlib.suppress(redis.RedisError):  # the tests that point it at nothing
        caches["customers"].delete_many([f"customer:{user_id}" for user_id in (ALICE, BOB, INACTIVE_USER)])


@pytest.fixture
def unreachable_redis(kept_customers: None, settings: Any, closed_port_url: str) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "customers": {**settings.CACHES["customers"], "LOCATION": closed_port_url.replace("http", "redis")},
    }


def user_deactivated(user_id: int) -> Envelope:
    payload = {"user_id": str(user_id)}
    validate_payload("user.deactivated", current_version("user.deactivated"), payload)
    return Envelope(
        event_id=uuid.uuid4(),
        event_type="user.deactivated",
        schema_version=current_version("user.deactivated"),
        occurred_at=timezone.now(),
        producer="user_service",
        aggregate_id=str(user_id),
        payload=payload,
    )


def test_orchestrated_orders_of_a_recently_verified_user_do_not_ask_user_service(
    kept_customers: None, settle: Callable[..., Order], upstreams: Upstreams
) -> None:
    orders = [settle([(1, 1)]) for _ in range(3)]

    assert [order.status for order in orders] == [OrderStatus.CONFIRMED] * 3
    assert len(upstreams.users.calls("user")) == 1
    # The kept contact is the one the mails use.
    assert {(order.saga.customer_email, order.saga.customer_name) for order in orders} == {
        (f"user{ALICE}@comptoir.dev", f"User {ALICE}")
    }


def test_choreographed_orders_of_a_recently_verified_user_do_not_ask_user_service(
    kept_customers: None, settings: Any, place_order: Callable[..., Any], upstreams: Upstreams
) -> None:
    settings.SAGA_MODE = "choreography"
    responses = [place_order([(1, 1)]) for _ in range(3)]

    assert [(r.status_code, r.json()["status"]) for r in responses] == [(202, "PENDING")] * 3
    assert len(upstreams.users.calls("user")) == 1


def test_a_kept_customer_is_read_in_the_request_thread_without_a_side_call(
    kept_customers: None,
    settings: Any,
    place_order: Callable[..., Any],
    upstreams: Upstreams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only an unknown customer is verified beside the quote, on a thread of its
    own (whose copied context would open a Redis connection of its own per order)."""
    settings.SAGA_MODE = "choreography"
    submitted: list[object] = []
    executor = services._side_calls

    def submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        submitted.append(args[0])
        return executor.submit(fn, *args, **kwargs)

    monkeypatch.setattr(services, "_side_calls", SimpleNamespace(submit=submit))
    responses = [place_order([(1, 1)]) for _ in range(3)]

    assert [(r.status_code, r.json()["status"]) for r in responses] == [(202, "PENDING")] * 3
    assert submitted == [choreography.user_can_order]  # the first order only
    assert len(upstreams.users.calls("user")) == 1
    assert {Order.objects.get(pk=r.json()["id"]).saga.customer_email for r in responses} == {
        f"user{ALICE}@comptoir.dev"
    }


def test_without_kept_customers_every_order_asks(settle: Callable[..., Order], upstreams: Upstreams) -> None:
    for _ in range(2):
        settle([(1, 1)])

    assert len(upstreams.users.calls("user")) == 2


def test_a_refused_user_is_never_kept(
    kept_customers: None, settle: Callable[..., Order], upstreams: Upstreams
) -> None:
    orders = [settle([(1, 1)], user_id=INACTIVE_USER) for _ in range(2)]

    assert [(o.status, o.cancel_reason) for o in orders] == [
        (OrderStatus.CANCELLED, CancelReason.USER_INACTIVE)
    ] * 2
    assert len(upstreams.users.calls("user")) == 2


def test_kept_customers_expire(settings: Any, kept_customers: None, upstreams: Upstreams) -> None:
    settings.ORDER_CUSTOMER_CACHE_S = 0.3
    customer_verify(user_id=ALICE)
    time.sleep(0.5)
    customer_verify(user_id=ALICE)

    assert len(upstreams.users.calls("user")) == 2


def test_a_closed_account_is_refused_at_its_next_order(
    kept_customers: None, settle: Callable[..., Order], upstreams: Upstreams
) -> None:
    confirmed = settle([(3, 1)])
    bob = settle([(3, 1)], user_id=BOB)
    upstreams.users.users[ALICE] = False  # user_service closed the account...
    handlers_for()["user.deactivated"](user_deactivated(ALICE))  # ...and said so

    refused = settle([(3, 1)])
    bob_again = settle([(3, 1)], user_id=BOB)

    assert (confirmed.status, bob.status, bob_again.status) == (OrderStatus.CONFIRMED,) * 3
    assert (refused.status, refused.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.USER_INACTIVE)
    assert timeline(refused) == [
        ("verify_user", "failed", "user_inactive"),
        ("cancel_order", "succeeded", None),
    ]
    assert [call.path for call in upstreams.users.calls("user")] == [
        f"/internal/users/{ALICE}/",
        f"/internal/users/{BOB}/",
        f"/internal/users/{ALICE}/",  # Bob's second order asked nobody
    ]
    assert [call.body["order_id"] for call in upstreams.payments.calls("charge")] == [
        str(confirmed.pk),
        str(bob.pk),
        str(bob_again.pk),
    ]


def test_a_verification_on_its_way_when_the_account_closed_keeps_nothing(
    kept_customers: None, upstreams: Upstreams
) -> None:
    # The answer (active) left user_service before the account closed; the
    # deactivation's marker is written before that answer arrives.
    customer_forget(user_id=ALICE)
    assert customer_verify(user_id=ALICE) == Customer(
        email=f"user{ALICE}@comptoir.dev", full_name=f"User {ALICE}"
    )
    upstreams.users.users[ALICE] = False

    with pytest.raises(StepRefused) as refused:
        customer_verify(user_id=ALICE)

    assert refused.value.reason == CancelReason.USER_INACTIVE
    assert len(upstreams.users.calls("user")) == 2


def test_orders_ask_user_service_while_redis_is_unreachable(
    unreachable_redis: None, settle: Callable[..., Order], upstreams: Upstreams
) -> None:
    orders = [settle([(1, 1)]) for _ in range(2)]

    assert [order.status for order in orders] == [OrderStatus.CONFIRMED] * 2
    assert len(upstreams.users.calls("user")) == 2


def test_a_deactivation_redis_cannot_record_fails_its_event_for_a_retry(unreachable_redis: None) -> None:
    with pytest.raises(redis.ConnectionError):
        handlers_for()["user.deactivated"](user_deactivated(ALICE))
