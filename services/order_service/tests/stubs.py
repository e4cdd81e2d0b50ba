"""Real HTTP stand-ins for user_service, product_service and payment_service.

Each is a threaded HTTP server on 127.0.0.1 (an ephemeral port) answering the
platform contract of the internal routes order_service calls, with just enough
state to behave like the real thing: stock that reservations take and give
back, wallets that charges debit and refunds credit, all idempotent per order
id. Tests can make an operation answer 503 a few times (`fail`), hold it until
released (`hold`), and read what was asked (`calls`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

QUOTE_PATH = "/internal/products/quote/"
TOKEN_PATH = "/internal/users/auth/service-token/"
STUB_SERVICE_TOKEN = "stub-service-token"

Answer = tuple[int, Any]


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


def error_body(code: str, message: str, details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details, "trace_id": None}}


@dataclass
class RecordedRequest:
    operation: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class ServiceStub:
    """Shared machinery: recording, injected 503s, holds."""

    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # operation -> how many of its next calls answer 503.
    failures: dict[str, int] = field(default_factory=dict)
    # operation -> a final answer (status, body) its next call gets instead.
    refusals: dict[str, Answer] = field(default_factory=dict)
    # operation -> an event its calls wait on (released by `hold`'s exit).
    holds: dict[str, threading.Event] = field(default_factory=dict)
    # operation -> set once a call of it is waiting on its hold.
    arrived: dict[str, threading.Event] = field(default_factory=dict)
    # Order ids a compensation found nothing for: a later charge/reservation is refused.
    tombstones: set[str] = field(default_factory=set)
    # The size of each batch received (its items are recorded as calls of the single route).
    batches: list[int] = field(default_factory=list)
    # Batch route -> the single route whose calls it carries.
    batch_routes: ClassVar[dict[str, str]] = {}

    def reset(self) -> None:
        with self.lock:
            self.requests = []
            self.batches = []
            self.tombstones = set()
            self.failures = {}
            self.refusals = {}
        for event in self.holds.values():
            event.set()
        self.holds, self.arrived = {}, {}

    def calls(self, operation: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if operation is None or r.operation == operation]

    def operations(self) -> list[str]:
        with self.lock:
            return [r.operation for r in self.requests]

    def fail(self, operation: str, times: int) -> None:
        """The next `times` calls of `operation` answer 503."""
        with self.lock:
            self.failures[operation] = times

    def refuse(self, operation: str, status: int, code: str) -> None:
        """The next call of `operation` answers `status` with error `code`."""
        with self.lock:
            self.refusals[operation] = (status, error_body(code, "Refused.", {}))

    @contextmanager
    def hold(self, operation: str) -> Iterator[threading.Event]:
        """Calls of `operation` wait inside the block; yields the 'one arrived' event."""
        release, arrived = threading.Event(), threading.Event()
        self.holds[operation], self.arrived[operation] = release, arrived
        try:
            yield arrived
        finally:
            release.set()

    def serve(self, method: str, path: str, headers: dict[str, str], body: Any) -> Answer:
        single = self.batch_routes.get(path) if method == "POST" else None
        if single is not None:
            # A batch: each item answered as its own call of the single route would be.
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                return 400, error_body("validation_error", "The request is not valid; see details.", {})
            with self.lock:
                self.batches.append(len(items))
            answers = [self.serve(method, single, headers, item) for item in items]
            return 200, {"results": [{"status": status, "body": answer} for status, answer in answers]}
        if path == TOKEN_PATH:
            return 200, {"access_token": STUB_SERVICE_TOKEN, "token_type": "Bearer", "expires_in": 300}
        if method == "GET" and "?" in path:
            # A GET's query string stands for its body: {name: [values]}.
            url = urlsplit(path)
            path, body = url.path, parse_qs(url.query)
        operation = self.operation(method, path)
        if operation is None:
            return 404, error_body("not_found", "No such resource.", {})
        with self.lock:
            self.requests.append(RecordedRequest(operation, path, headers, body))
        if headers.get("Authorization") != f"Bearer {STUB_SERVICE_TOKEN}":
            return 401, error_body("not_authenticated", "Service token required.", {})
        hold = self.holds.get(operation)
        if hold is not None:
            self.arrived[operation].set()
            hold.wait(timeout=30)
        with self.lock:
            if self.failures.get(operation, 0) > 0:
                self.failures[operation] -= 1
                return 503, error_body("unavailable", "Restarting.", {})
            refusal = self.refusals.pop(operation, None)
        if refusal is not None:
            return refusal
        return self.answer(operation, path, body)

    def operation(self, method: str, path: str) -> str | None:
        raise NotImplementedError

    def answer(self, operation: str, path: str, body: Any) -> Answer:
        raise NotImplementedError


def audit_page(rows: list[dict[str, Any]], query: dict[str, list[str]] | None) -> Answer:
    """The audit routes' keyset page (`after`, `limit`, `order_id`...) over `rows`, sorted by "id".

    The stand-ins keep no creation times: `since` and `until` are ignored.
    """
    query = query or {}
    after, limit = int(query.get("after", ["0"])[0]), int(query.get("limit", ["200"])[0])
    wanted = set(query.get("order_id", []))
    chosen = [
        row
        for row in sorted(rows, key=lambda row: int(row["id"]))
        if int(row["id"]) > after and (not wanted or row["order_id"] in wanted)
    ][:limit]
    next_after = chosen[-1]["id"] if len(chosen) == limit else None
    return 200, {"results": chosen, "next_after": next_after}


@dataclass
class UserServiceStub(ServiceStub):
    # user id -> is_active; anyone else is unknown (404).
    users: dict[int, bool] = field(default_factory=dict)

    def reset(self) -> None:
        super().reset()
        self.users = {1: True, 2: True, 3: True, 9: False}

    def operation(self, method: str, path: str) -> str | None:
        return "user" if method == "GET" and re.fullmatch(r"/internal/users/\d+/", path) else None

    def answer(self, operation: str, path: str, body: Any) -> Answer:
        user_id = int(path.split("/")[3])
        if user_id not in self.users:
            return 404, error_body("user_not_found", "No such user.", {})
        return 200, {
            "id": user_id,
            "email": f"user{user_id}@comptoir.dev",
            "full_name": f"User {user_id}",
            "is_active": self.users[user_id],
        }


@dataclass
class ProductServiceStub(ServiceStub):
    batch_routes: ClassVar[dict[str, str]] = {
        "/internal/stock/reservations/batch/": "/internal/stock/reservations/"
    }
    # (status, body) answered to every quote instead of the catalogue's answer.
    quote_override: Answer | None = None
    # Every quote waits here until this many quotes are in flight.
    quote_barrier: threading.Barrier | None = None
    # product id -> units available (reservations take, releases give back).
    stock: dict[int, int] = field(default_factory=dict)
    # order id -> {"status", "lines"}.
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # product id -> its price now, where it differs from CATALOGUE's (quotes and
    # reservations both use it; a reservation naming another price is refused).
    prices: dict[int, Decimal] = field(default_factory=dict)

    @property
    def quote_failures_left(self) -> int:
        return self.failures.get("quote", 0)

    @quote_failures_left.setter
    def quote_failures_left(self, times: int) -> None:
        self.fail("quote", times)

    def reset(self) -> None:
        super().reset()
        self.quote_override = None
        self.quote_barrier = None
        self.stock = dict.fromkeys(CATALOGUE, 100)
        self.reservations = {}
        self.prices = {}

    def price_of(self, product_id: int) -> Decimal:
        return self.prices.get(product_id, CATALOGUE[product_id].price)

    def quotes(self) -> list[RecordedRequest]:
        return self.calls("quote")

    def operation(self, method: str, path: str) -> str | None:
        if method == "GET" and path in (
            "/internal/stock/audit/reservations/",
            "/internal/stock/audit/products/",
        ):
            return "audit_" + path.split("/")[4]
        if method != "POST":
            return None
        if path == QUOTE_PATH:
            return "quote"
        if path == "/internal/stock/reservations/":
            return "reserve"
        match = re.fullmatch(r"/internal/stock/reservations/[^/]+/(commit|release)/", path)
        return match[1] if match else None

    def answer(self, operation: str, path: str, body: Any) -> Answer:
        if operation == "audit_reservations":
            with self.lock:
                rows = [
                    {"id": n, "order_id": order_id, **reservation}
                    for n, (order_id, reservation) in enumerate(self.reservations.items(), start=1)
                ]
            return audit_page(rows, body)
        if operation == "audit_products":
            return audit_page(self._balances(), body)
        if operation == "quote":
            if self.quote_barrier is not None:
                self.quote_barrier.wait(timeout=10)
            return self.quote_override or self._quote(body)
        if operation == "reserve":
            return self._reserve(str(body["order_id"]), body["lines"])
        order_id = path.split("/")[4]
        with self.lock:
            reservation = self.reservations.get(order_id)
            if reservation is None:
                if operation == "release":
                    self.tombstones.add(order_id)
                return 404, error_body("reservation_not_found", "No reservation.", {})
            if operation == "commit":
                if reservation["status"] == "RELEASED":
                    return 409, error_body("reservation_released", "Released.", {})
                reservation["status"] = "COMMITTED"
            else:
                if reservation["status"] == "COMMITTED":
                    return 409, error_body("reservation_committed", "Committed.", {})
                if reservation["status"] == "RESERVED":
                    for line in reservation["lines"]:
                        self.stock[line["product_id"]] += line["quantity"]
                reservation["status"] = "RELEASED"
            return 200, {"order_id": order_id, **reservation}

    def _balances(self) -> list[dict[str, Any]]:
        """Every product started with 100 units (its stock count); reservations
        hold and commit units, and the ledger moves with `stock` in this stand-in."""
        with self.lock:
            out = {"RESERVED": dict.fromkeys(self.stock, 0), "COMMITTED": dict.fromkeys(self.stock, 0)}
            for reservation in self.reservations.values():
                for line in reservation["lines"]:
                    if reservation["status"] in out:
                        out[reservation["status"]][line["product_id"]] += line["quantity"]
            return [
                {
                    "id": product_id,
                    "order_id": "",
                    "product_id": product_id,
                    "quantity": quantity,
                    "ledger": 100 - out["RESERVED"][product_id] - out["COMMITTED"][product_id],
                    "adjusted": 100,
                    "held": out["RESERVED"][product_id],
                    "committed": out["COMMITTED"][product_id],
                }
                for product_id, quantity in self.stock.items()
            ]

    def order_confirmed(self, order_id: str) -> None:
        """What product_service does when `order.confirmed` reaches it: the held stock is sold."""
        with self.lock:
            reservation = self.reservations.get(order_id)
            if reservation is not None and reservation["status"] == "RESERVED":
                reservation["status"] = "COMMITTED"

    def _reserve(self, order_id: str, lines: list[dict[str, int]]) -> Answer:
        with self.lock:
            if order_id in self.reservations:
                return 201, {"order_id": order_id, **self.reservations[order_id]}
            if order_id in self.tombstones:
                return 409, error_body("order_compensated", "Compensated.", {"order_id": order_id})
            short = [
                {
                    "product_id": line["product_id"],
                    "requested": line["quantity"],
                    "available": self.stock.get(line["product_id"], 0),
                }
                for line in lines
                if self.stock.get(line["product_id"], 0) < line["quantity"]
            ]
            if short:
                return 409, error_body("insufficient_stock", "Not enough stock.", {"lines": short})
            changed = [
                line["product_id"]
                for line in lines
                if "unit_price" in line and Decimal(line["unit_price"]) != self.price_of(line["product_id"])
            ]
            if changed:
                return 409, error_body("price_changed", "A price changed.", {"product_ids": changed})
            lines = [{"product_id": line["product_id"], "quantity": line["quantity"]} for line in lines]
            for line in lines:
                self.stock[line["product_id"]] -= line["quantity"]
            self.reservations[order_id] = {"status": "RESERVED", "lines": lines}
            return 201, {"order_id": order_id, "status": "RESERVED", "lines": lines}

    def _quote(self, body: Any) -> Answer:
        requested = body["lines"]
        unknown = [line["product_id"] for line in requested if line["product_id"] not in CATALOGUE]
        if unknown:
            return 404, error_body("product_not_found", "Unknown product.", {"product_ids": unknown})
        inactive = [line["product_id"] for line in requested if not CATALOGUE[line["product_id"]].active]
        if inactive:
            return 400, error_body("product_inactive", "Product not for sale.", {"product_ids": inactive})
        lines = []
        for line in requested:
            product, price = CATALOGUE[line["product_id"]], self.price_of(line["product_id"])
            lines.append(
                {
                    "product_id": line["product_id"],
                    "name": product.name,
                    "quantity": line["quantity"],
                    "unit_price": str(price),
                    "currency": "EUR",
                    "line_total": str(price * line["quantity"]),
                }
            )
        total = sum((Decimal(line["line_total"]) for line in lines), Decimal("0.00"))
        return 200, {"lines": lines, "total": str(total), "currency": "EUR"}


@dataclass
class PaymentServiceStub(ServiceStub):
    batch_routes: ClassVar[dict[str, str]] = {
        "/internal/payments/charge/batch/": "/internal/payments/charge/"
    }
    # user id -> balance (EUR).
    wallets: dict[int, Decimal] = field(default_factory=dict)
    # order id -> {"payment_id", "status", "amount", "user_id"}.
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # user id -> the balance its wallet opened with (its ledger's first credit).
    opening: dict[int, Decimal] = field(default_factory=dict)

    def reset(self) -> None:
        super().reset()
        self.wallets = {1: Decimal("1000.00"), 2: Decimal("500.00"), 3: Decimal("20.00")}
        self.opening = dict(self.wallets)
        self.payments = {}

    def operation(self, method: str, path: str) -> str | None:
        if method == "GET" and path in (
            "/internal/payments/audit/payments/",
            "/internal/payments/audit/wallets/",
        ):
            return "audit_" + path.split("/")[4]
        if method == "POST" and path == "/internal/payments/charge/":
            return "charge"
        if method == "POST" and path == "/internal/payments/refund/":
            return "refund"
        return None

    def captured(self) -> list[str]:
        """Order ids with a payment captured (and not refunded)."""
        with self.lock:
            return sorted(o for o, p in self.payments.items() if p["status"] == "CAPTURED")

    def answer(self, operation: str, path: str, body: Any) -> Answer:
        if operation.startswith("audit_"):
            return self._audit(operation, body)
        order_id = str(body["order_id"])
        with self.lock:
            payment = self.payments.get(order_id)
            if operation == "refund":
                if payment is None:
                    self.tombstones.add(order_id)
                    return 404, error_body("payment_not_found", "Nothing captured.", {})
                if payment["status"] == "CAPTURED":
                    self.wallets[payment["user_id"]] += payment["amount"]
                    payment["status"] = "REFUNDED"
                return 200, self._result(order_id, payment)
            if payment is not None:
                return 201, self._result(order_id, payment)
            if order_id in self.tombstones:
                return 409, error_body("order_compensated", "Compensated.", {"order_id": order_id})
            user_id, amount = int(body["user_id"]), Decimal(body["amount"])
            if self.wallets.get(user_id, Decimal("0")) < amount:
                return 409, error_body("insufficient_funds", "Not enough money.", {})
            self.wallets[user_id] -= amount
            payment = {"payment_id": len(self.payments) + 1, "status": "CAPTURED", "amount": amount}
            payment["user_id"] = user_id
            self.payments[order_id] = payment
            return 201, self._result(order_id, payment)

    def _audit(self, operation: str, query: dict[str, list[str]] | None) -> Answer:
        """Payments with what the ledger moved, wallets with the sum of their ledger
        (the opening credit, minus what captured payments took)."""
        with self.lock:
            payments = [
                {
                    **self._result(order_id, payment),
                    "id": payment["payment_id"],
                    "charged": str(payment["amount"]),
                    "refunded": str(
                        payment["amount"] if payment["status"] == "REFUNDED" else Decimal("0.00")
                    ),
                }
                for order_id, payment in self.payments.items()
            ]
            wallets = [
                {
                    "id": user_id,
                    "order_id": "",
                    "user_id": user_id,
                    "balance": str(balance),
                    "currency": "EUR",
                    "ledger": str(
                        self.opening.get(user_id, Decimal("0.00"))
                        - sum(
                            (
                                p["amount"]
                                for p in self.payments.values()
                                if p["user_id"] == user_id and p["status"] == "CAPTURED"
                            ),
                            Decimal("0.00"),
                        )
                    ),
                }
                for user_id, balance in self.wallets.items()
            ]
        return audit_page(payments if operation == "audit_payments" else wallets, query)

    @staticmethod
    def _result(order_id: str, payment: dict[str, Any]) -> dict[str, Any]:
        return {
            "payment_id": payment["payment_id"],
            "order_id": order_id,
            "user_id": payment["user_id"],
            "status": payment["status"],
            "amount": str(payment["amount"]),
            "currency": "EUR",
        }


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: ServiceStub


class _StubHandler(BaseHTTPRequestHandler):
    server: _StubServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.loads(raw) if raw else None
        status, answer = self.server.stub.serve(method, self.path, dict(self.headers.items()), body)
        payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def running(stub: ServiceStub) -> Iterator[ServiceStub]:
    """Serves `stub` on 127.0.0.1 until the block ends."""
    server = _StubServer(("127.0.0.1", 0), _StubHandler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    stub.reset()
    server.stub = stub
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.reset()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
