"""Fixtures: tokens, a real HTTP stand-in for product_service, order factories.

`product_service` is a real HTTP server on 127.0.0.1 (an ephemeral port) that
answers the platform contract for `POST /internal/products/quote/` from a small
catalogue, and user_service's `POST /api/users/auth/service-token/`, so the
service's own HTTP client, token handling and error mapping run for real.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client

from orders.models import Order, OrderLine, OrderStatus, OrderStatusChange

if TYPE_CHECKING:
    # Not at import time: pytest must load comptoir.testing as a plugin first.
    from comptoir.testing import TokenFactory

pytest_plugins = ["comptoir.testing"]

QUOTE_PATH = "/internal/products/quote/"
TOKEN_PATH = "/api/users/auth/service-token/"
STUB_SERVICE_TOKEN = "stub-service-token"
ALICE, BOB = 2, 3


@dataclass(frozen=True)
class Product:
    name: str
    price: Decimal
    active: bool = True


CATALOGUE: dict[int, Product] = {
    1: Product("Espresso cup", Decimal("12.50")),
    2: Product("Coffee grinder", Decimal("89.99")),
    3: Product("Paper filter", Decimal("0.10")),
    4: Product("Retired mug", Decimal("9.00"), active=False),
    5: Product("Espresso machine", Decimal("999999999.99")),
    **{n: Product(f"Sample {n}", Decimal("1.00")) for n in range(100, 150)},
}


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class ProductServiceStub:
    """What the stub answers, and what it was asked."""

    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    # (status, body) answered to every quote instead of the catalogue's answer.
    quote_override: tuple[int, Any] | None = None
    # Every quote waits here until this many quotes are in flight.
    quote_barrier: threading.Barrier | None = None
    # The next this-many quotes are answered 503 (a restarting product_service).
    quote_failures_left: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests = []
        self.quote_override = None
        self.quote_barrier = None
        self.quote_failures_left = 0

    def quotes(self) -> list[RecordedRequest]:
        with self.lock:
            return [request for request in self.requests if request.path == QUOTE_PATH]

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def answer_quote(self, body: Any) -> tuple[int, Any]:
        if self.quote_barrier is not None:
            self.quote_barrier.wait(timeout=10)
        with self.lock:
            if self.quote_failures_left > 0:
                self.quote_failures_left -= 1
                return 503, _error("unavailable", "Restarting.", {})
        if self.quote_override is not None:
            return self.quote_override
        requested = body["lines"]
        unknown = [line["product_id"] for line in requested if line["product_id"] not in CATALOGUE]
        if unknown:
            return 404, _error("product_not_found", "Unknown product.", {"product_ids": unknown})
        inactive = [line["product_id"] for line in requested if not CATALOGUE[line["product_id"]].active]
        if inactive:
            return 400, _error("product_inactive", "Product not for sale.", {"product_ids": inactive})
        lines = []
        for line in requested:
            product = CATALOGUE[line["product_id"]]
            lines.append(
                {
                    "product_id": line["product_id"],
                    "name": product.name,
                    "quantity": line["quantity"],
                    "unit_price": str(product.price),
                    "currency": "EUR",
                    "line_total": str(product.price * line["quantity"]),
                }
            )
        total = sum((Decimal(line["line_total"]) for line in lines), Decimal("0.00"))
        return 200, {"lines": lines, "total": str(total), "currency": "EUR"}


def _error(code: str, message: str, details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details, "trace_id": None}}


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: ProductServiceStub


class _StubHandler(BaseHTTPRequestHandler):
    server: _StubServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.loads(raw) if raw else None
        stub = self.server.stub
        stub.record(RecordedRequest(self.path, dict(self.headers.items()), body))
        if self.path == TOKEN_PATH:
            self._send(200, {"access_token": STUB_SERVICE_TOKEN, "token_type": "Bearer", "expires_in": 300})
        elif self.path == QUOTE_PATH:
            if self.headers.get("Authorization") != f"Bearer {STUB_SERVICE_TOKEN}":
                self._send(401, _error("not_authenticated", "Service token required.", {}))
            else:
                self._send(*stub.answer_quote(body))
        else:
            self._send(404, _error("not_found", "No such resource.", {}))

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="session")
def product_service_stub() -> Iterator[ProductServiceStub]:
    server = _StubServer(("127.0.0.1", 0), _StubHandler)
    stub = ProductServiceStub(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.stub = stub
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def product_service(product_service_stub: ProductServiceStub, settings: Any) -> ProductServiceStub:
    """product_service (and the service-token endpoint) answered by the stub."""
    product_service_stub.reset()
    settings.PRODUCT_SERVICE_URL = product_service_stub.url
    settings.SERVICE_TOKEN_URL = f"{product_service_stub.url}{TOKEN_PATH}"
    return product_service_stub


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
