"""Fixtures: tokens, real HTTP stand-ins for the upstream services, Celery, factories.

The stand-ins (tests/stubs.py) are real HTTP servers on 127.0.0.1 answering the
platform contracts (quote, reservations, internal user lookup, charge and
refund, and user_service's service-token endpoint), so the service's own HTTP
clients, token handling and error mapping run for real.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import Client

from config.celery import app as celery_app
from orders.models import Order, OrderLine, OrderStatus, OrderStatusChange

from .processes import ProcessRunner
from .stubs import (
    CATALOGUE,
    STUB_SERVICE_TOKEN,
    TOKEN_PATH,
    PaymentServiceStub,
    ProductServiceStub,
    UserServiceStub,
    running,
)

if TYPE_CHECKING:
    # Not at import time: pytest must load comptoir.testing as a plugin first.
    from comptoir.testing import TokenFactory

pytest_plugins = ["comptoir.testing"]

__all__ = ["CATALOGUE", "STUB_SERVICE_TOKEN", "ProductServiceStub"]

ALICE, BOB = 2, 3
INACTIVE_USER = 9


# ------------------------------------------------------------- Celery


@pytest.fixture(autouse=True)
def prices_asked_every_time(settings: Any) -> Iterator[None]:
    """Every order asks product_service for a quote (no prices kept between tests);
    `tests/test_price_cache.py` turns the kept prices on where it tests them."""
    settings.ORDER_PRICE_CACHE_S = 0
    caches["prices"].clear()
    yield
    caches["prices"].clear()


@pytest.fixture(autouse=True)
def customers_asked_every_time(settings: Any) -> None:
    """Every order asks user_service about its user (no customers kept between
    tests); `tests/test_customer_cache.py` turns the kept customers on where it tests them."""
    settings.ORDER_CUSTOMER_CACHE_S = 0


@pytest.fixture(scope="session", autouse=True)
def celery_test_queue() -> Iterator[str]:
    """A queue of the session's own, so nothing a test enqueues can reach the
    devstack's order_service worker (which would look the ids up in the real
    database). Tasks go to Redis and stay there unless a test runs them: eagerly
    (`celery_eager`) or through a real worker process."""
    queue = f"order_service.test.{uuid.uuid4().hex[:8]}"
    # The app reads Django's CELERY_* settings: its keys carry that prefix.
    celery_app.conf.CELERY_TASK_DEFAULT_QUEUE = queue
    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = True
    assert celery_app.amqp.default_queue.name == queue
    yield queue
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        broker.delete(queue, f"_kombu.binding.{queue}")
        # Tasks a killed worker left unacknowledged would come back to the queue.
        unacked = settings.CELERY_BROKER_TRANSPORT_OPTIONS["unacked_key"]
        entries: dict[bytes, bytes] = broker.hgetall(unacked)  # type: ignore[assignment]
        for raw_tag, raw in entries.items():
            if json.loads(raw)[2] == queue:
                tag = raw_tag.decode()
                broker.hdel(unacked, tag)
                broker.zrem(settings.CELERY_BROKER_TRANSPORT_OPTIONS["unacked_index_key"], tag)
    finally:
        broker.close()


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Tasks run in-process as they are enqueued; a retry runs at once (no
    countdown). Errors are not propagated (a propagated Retry would stop the
    eager retry): tests check the state the saga reached, and the log says why."""
    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = False
    try:
        yield
    finally:
        celery_app.conf.CELERY_TASK_ALWAYS_EAGER = False
        celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = True


@pytest.fixture
def run_on_commit() -> Callable[[], AbstractContextManager[None]]:
    """Like django_capture_on_commit_callbacks(execute=True), minus the chassis'
    relay wake-up: that callback sends its own BEGIN ... COMMIT, which inside a
    test's transaction would commit the test's data for good."""

    @contextmanager
    def running_callbacks() -> Iterator[None]:
        run_on_commit = connection.run_on_commit
        start = len(run_on_commit)
        try:
            yield
        finally:
            while True:
                count = len(run_on_commit)
                for entry in run_on_commit[start:count]:
                    callback = entry[1]
                    if not getattr(callback, "comptoir_outbox_notify", False):
                        callback()
                if count == len(run_on_commit):
                    break
                start = count

    return running_callbacks


@pytest.fixture
def processes(tmp_path: Path, celery_test_queue: str) -> Iterator[ProcessRunner]:
    """Real worker and consumer processes of this service, on the test database
    and the session's queue."""
    runner = ProcessRunner(tmp_path, env={"ORDER_SERVICE_TEST_QUEUE": celery_test_queue})
    yield runner
    runner.stop_all()


# ------------------------------------------------------------- upstream stubs


@pytest.fixture(scope="session")
def product_service_stub() -> Iterator[ProductServiceStub]:
    with running(ProductServiceStub()) as stub:
        yield stub  # type: ignore[misc]


@pytest.fixture(scope="session")
def user_service_stub() -> Iterator[UserServiceStub]:
    with running(UserServiceStub()) as stub:
        yield stub  # type: ignore[misc]


@pytest.fixture(scope="session")
def payment_service_stub() -> Iterator[PaymentServiceStub]:
    with running(PaymentServiceStub()) as stub:
        yield stub  # type: ignore[misc]


@pytest.fixture
def product_service(product_service_stub: ProductServiceStub, settings: Any) -> ProductServiceStub:
    """product_service (and the service-token endpoint) answered by the stub."""
    product_service_stub.reset()
    settings.PRODUCT_SERVICE_URL = product_service_stub.url
    settings.SERVICE_TOKEN_URL = f"{product_service_stub.url}{TOKEN_PATH}"
    return product_service_stub


@pytest.fixture
def user_service(user_service_stub: UserServiceStub, settings: Any) -> UserServiceStub:
    user_service_stub.reset()
    settings.USER_SERVICE_URL = user_service_stub.url
    return user_service_stub


@pytest.fixture
def payment_service(payment_service_stub: PaymentServiceStub, settings: Any) -> PaymentServiceStub:
    payment_service_stub.reset()
    settings.PAYMENT_SERVICE_URL = payment_service_stub.url
    return payment_service_stub


@dataclass(frozen=True)
class Upstreams:
    users: UserServiceStub
    products: ProductServiceStub
    payments: PaymentServiceStub

    def operations(self) -> list[str]:
        """Every saga call made, in order, across the three services (quotes left out)."""
        calls = [*self.users.calls(), *self.products.calls(), *self.payments.calls()]
        return [call.operation for call in sorted(calls, key=lambda c: c.at) if call.operation != "quote"]


@pytest.fixture
def upstreams(
    user_service: UserServiceStub, product_service: ProductServiceStub, payment_service: PaymentServiceStub
) -> Upstreams:
    return Upstreams(users=user_service, products=product_service, payments=payment_service)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def alice_headers(tokens: TokenFactory) -> dict[str, str]:
    return tokens.header(tokens.user(ALICE))


@pytest.fixture
def bob_headers(tokens: TokenFactory) -> dict[str, str]:
    return tokens.header(tokens.user(BOB))


@pytest.fixture
def place_order(client: Client, alice_headers: dict[str, str]) -> Callable[..., Any]:
    """POSTs an order as Alice (or with `headers`); `lines` are (product_id, quantity) pairs."""

    def place(
        lines: list[tuple[int, int]] | None = None,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        if body is None:
            body = {"lines": [{"product_id": p, "quantity": q} for p, q in lines or [(1, 1)]]}
        sent = dict(alice_headers if headers is None else headers)
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        return client.post("/api/orders/", body, content_type="application/json", headers=sent)

    return place


@pytest.fixture
def settle(
    place_order: Callable[..., Any],
    tokens: TokenFactory,
    celery_eager: None,
    run_on_commit: Callable[[], Any],
) -> Callable[..., Order]:
    """Places an order through the API (orchestrated) and runs its whole saga in-process."""

    def run(lines: list[tuple[int, int]] | None = None, *, user_id: int = ALICE) -> Order:
        with run_on_commit():
            response = place_order(lines or [(1, 2)], headers=tokens.header(tokens.user(user_id)))
        assert response.status_code == 202, response.json()
        assert (response.json()["status"], response.json()["saga_mode"]) == ("PENDING", "orchestration")
        return Order.objects.get(pk=response.json()["id"])

    return run


@pytest.fixture
def make_order() -> Callable[..., Order]:
    """Writes an order straight to the database (for reads and transitions)."""

    def make(
        *,
        user_id: int = ALICE,
        lines: list[tuple[int, int]] | None = None,
        status: str = OrderStatus.PENDING,
        cancel_reason: str | None = None,
    ) -> Order:
        quoted = [(product_id, CATALOGUE[product_id], qty) for product_id, qty in lines or [(1, 2)]]
        order = Order.objects.create(
            user_id=user_id,
            status=status,
            cancel_reason=cancel_reason,
            total=sum((product.price * qty for _, product, qty in quoted), Decimal("0.00")),
            currency="EUR",
        )
        for product_id, product, qty in quoted:
            OrderLine.objects.create(
                order=order,
                product_id=product_id,
                product_name=product.name,
                quantity=qty,
                unit_price=product.price,
                line_total=product.price * qty,
            )
        OrderStatusChange.objects.create(order=order, from_status=None, to_status=OrderStatus.PENDING)
        if status != OrderStatus.PENDING:
            OrderStatusChange.objects.create(
                order=order, from_status=OrderStatus.PENDING, to_status=status, reason=cancel_reason
            )
        return order

    return make
