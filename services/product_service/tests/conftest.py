from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client

from catalog.models import Category, Product, StockLevel
from catalog.services import stock_set
from comptoir.events.testing import ServiceProcesses, service_processes, unique_topics

if TYPE_CHECKING:
    from comptoir.testing import TokenFactory

pytest_plugins = ["comptoir.testing"]

ProductFactory = Callable[..., Product]
CategoryFactory = Callable[..., Category]


class Api:
    """JSON requests through Django's test client, optionally with a bearer token."""

    def __init__(self, client: Client, token: str | None = None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(path, params or {}, headers=self.headers)

    def _send(self, method: str, path: str, body: Any) -> Any:
        send = getattr(self.client, method)
        data = json.dumps(body) if body is not None else ""
        return send(path, data, content_type="application/json", headers=self.headers)

    def post(self, path: str, body: Any = None) -> Any:
        return self._send("post", path, body)

    def put(self, path: str, body: Any = None) -> Any:
        return self._send("put", path, body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self._send("patch", path, body)

    def delete(self, path: str) -> Any:
        return self.client.delete(path, headers=self.headers)


@pytest.fixture
def anonymous(client: Client) -> Api:
    return Api(client)


@pytest.fixture
def end_user(client: Client, tokens: TokenFactory) -> Api:
    return Api(client, tokens.user(7))


@pytest.fixture
def staff(client: Client, tokens: TokenFactory) -> Api:
    return Api(client, tokens.user(1, is_staff=True))


@pytest.fixture
def order_service(client: Client, tokens: TokenFactory) -> Api:
    return Api(client, tokens.service("order_service"))


@pytest.fixture
def email_service(client: Client, tokens: TokenFactory) -> Api:
    """A service whose tokens carry no product or stock scope."""
    return Api(client, tokens.service("email_service"))


@pytest.fixture
def make_category(db: None) -> CategoryFactory:
    def make(slug: str = "coffee", name: str | None = None) -> Category:
        category, _ = Category.objects.get_or_create(slug=slug, defaults={"name": name or slug.title()})
        return category

    return make


@pytest.fixture
def make_product(make_category: CategoryFactory) -> ProductFactory:
    counter = iter(range(1, 10_000))

    def make(
        *,
        sku: str | None = None,
        name: str | None = None,
        price: str = "10.00",
        stock: int = 10,
        category: str = "coffee",
        description: str = "",
        is_active: bool = True,
        currency: str = "EUR",
    ) -> Product:
        n = next(counter)
        product = Product.objects.create(
            sku=sku or f"SKU-{n:04d}",
            name=name or f"Product {n:04d}",
            description=description,
            price=Decimal(price),
            currency=currency,
            category=make_category(category),
            is_active=is_active,
        )
        # Through the service, so the stock ledger explains the quantity.
        stock_set(product_id=product.pk, quantity=stock)
        return product

    return make


@pytest.fixture
def stock_of(db: None) -> Callable[[Product], int]:
    def read(product: Product) -> int:
        return StockLevel.objects.get(product=product).quantity

    return read


# ------------------------------------------------------------------ events

# What product_service consumes and produces.
EVENT_TYPES = [
    "order.created",
    "order.cancelled",
    "order.confirmed",
    "stock.reserved",
    "stock.rejected",
    "stock.released",
]


@pytest.fixture
def event_topics(settings: Any) -> dict[str, str]:
    """Topics of the test's own for every event type the service touches (here and in subprocesses)."""
    topics = unique_topics(EVENT_TYPES)
    settings.COMPTOIR_EVENTS = {**getattr(settings, "COMPTOIR_EVENTS", {}), "TOPICS": topics}
    return topics


@pytest.fixture
def processes(
    transactional_db: None, event_topics: dict[str, str], tmp_path: Path
) -> Iterator[ServiceProcesses]:
    """The service's own relay and consumer processes, started by the test, stopped and cleaned after."""
    yield from service_processes(tmp_path, event_topics)
