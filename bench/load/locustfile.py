"""A steady, bounded load of customers on the running platform, through the gateway.

Run by `make load` (bench/load/run.py), or by hand:

    LOAD_RATE=5 LOAD_USERS=10 locust -f bench/load/locustfile.py --headless \
        --host http://127.0.0.1:8000 --users 10 --spawn-rate 10 --run-time 60s

- Setup, once (`init`, before the run's clock starts): the staff account creates three products of its
  own (one cheap with ample stock, one out of stock, one no wallet can pay) and
  a pool of `LOAD_CUSTOMERS` customers with funded wallets. Few logins: the
  gateway allows 10 a minute per address, so the pool is small and shared.
- `OrderingCustomer`s place `LOAD_RATE` orders a second between them (constant
  throughput), of every outcome: 70 % successes, 15 % out of stock, 15 %
  insufficient funds (a fixed round of 20), then read the order back like the order page does.
- `BrowsingCustomer`s read the catalogue: list pages, searches, a category,
  product pages, one request a second each.

Which saga mode settles the orders is order_service's setting: run.py restarts
its processes in each mode in turn.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from locust import HttpUser, constant_throughput, events, task
from locust.env import Environment

RATE = float(os.environ.get("LOAD_RATE", "5"))
USERS = int(os.environ.get("LOAD_USERS", "10"))
CUSTOMERS = int(os.environ.get("LOAD_CUSTOMERS", "4"))
STAFF = (
    os.environ.get("LOAD_STAFF_EMAIL", "staff@comptoir.dev"),
    os.environ.get("LOAD_STAFF_PASSWORD", "Comptoir-staff-2026"),
)
# The outcomes of every 20 orders, in this order (70 % success, 15 % each failure):
# a fixed round, so even a short run places orders of every outcome.
OUTCOME_ROUND = [
    *["success"] * 4, "out_of_stock", *["success"] * 3, "insufficient_funds",
    *["success"] * 4, "out_of_stock", *["success"] * 3, "insufficient_funds",
    "out_of_stock", "insufficient_funds",
]  # fmt: skip
WALLET = Decimal("100000.00")
SEARCHES = ["espresso", "tea", "coffee", "kettle", "load", "ethiopia", "filter", "mug"]
ORDERING_USERS = max(1, USERS // 2)
SETUP_TIMEOUT_S = 120.0


@dataclass
class Customer:
    email: str
    password: str
    access: str
    refresh: str


@dataclass
class Fixture:
    """What the setup made; every simulated user reads it."""

    staff: str
    products: dict[str, int]  # outcome -> product id
    catalogue: list[int]
    customers: list[Customer]


FIXTURE: Fixture | None = None
_refresh_lock = threading.Lock()
_order_count = itertools.count()


def _call(method: str, url: str, *, expected: tuple[int, ...], **kwargs: Any) -> Any:
    """One setup request; a 429 is waited out (Retry-After), within SETUP_TIMEOUT_S."""
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while True:
        response = requests.request(method, url, timeout=30, **kwargs)
        if response.status_code == 429 and time.monotonic() < deadline:
            time.sleep(min(float(response.headers.get("Retry-After", "5")), 30.0))
            continue
        if response.status_code not in expected:
            raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None


def _login(host: str, email: str, password: str) -> tuple[str, str]:
    body = _call(
        "POST", f"{host}/api/users/auth/login/", expected=(200,), json={"email": email, "password": password}
    )
    return str(body["access"]), str(body["refresh"])


def _product(host: str, staff: str, *, name: str, price: str, stock: int) -> int:
    sku = f"LOAD-{uuid.uuid4().hex[:10].upper()}"
    headers = {"Authorization": f"Bearer {staff}"}
    product = _call(
        "POST",
        f"{host}/api/products/",
        expected=(201,),
        headers=headers,
        json={
            "sku": sku,
            "name": f"Load {name} {sku}",
            "description": "made by make load",
            "price": price,
            "currency": "EUR",
            "category": "coffee",
            "is_active": True,
        },
    )
    _call(
        "PUT",
        f"{host}/api/products/{product['id']}/stock/",
        expected=(200,),
        headers=headers,
        json={"quantity": stock},
    )
    return int(product["id"])


def prepare(host: str) -> Fixture:
    staff, _ = _login(host, *STAFF)
    products = {
        "success": _product(host, staff, name="beans", price="1.50", stock=1_000_000),
        "out_of_stock": _product(host, staff, name="sold out", price="2.00", stock=0),
        "insufficient_funds": _product(
            host, staff, name="espresso machine", price="999999.00", stock=1_000_000
        ),
    }
    page = _call("GET", f"{host}/api/products/", expected=(200,), params={"page_size": 50})
    catalogue = [int(p["id"]) for p in page["results"]] or list(products.values())
    customers = []
    for _ in range(CUSTOMERS):
        email, password = f"load-{uuid.uuid4().hex[:12]}@example.com", f"Load-{uuid.uuid4().hex}"
        user = _call(
            "POST",
            f"{host}/api/users/register/",
            expected=(201,),
            json={"email": email, "password": password, "full_name": "Load Customer"},
        )
        _call(
            "POST",
            f"{host}/api/payments/wallets/{user['id']}/credit/",
            expected=(200,),
            headers={"Authorization": f"Bearer {staff}"},
            json={"amount": str(WALLET)},
        )
        customers.append(Customer(email, password, *_login(host, email, password)))
    return Fixture(staff=staff, products=products, catalogue=catalogue, customers=customers)


@events.init.add_listener
def _on_init(environment: Environment, **kwargs: Any) -> None:
    """Before the run (and its --run-time clock) starts: the setup takes a few seconds."""
    global FIXTURE
    host = environment.host or getattr(environment.parsed_options, "host", None)
    assert host, "name the gateway with --host"
    FIXTURE = prepare(host.rstrip("/"))


class _Customer(HttpUser):
    abstract = True

    def on_start(self) -> None:
        assert FIXTURE is not None, "the setup did not run"
        self.customer = random.choice(FIXTURE.customers)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.customer.access}"}

    def _refresh(self, stale: str) -> None:
        """An expired access token: one refresh per customer (the refresh token rotates)."""
        with _refresh_lock:
            if self.customer.access != stale:
                return  # another user refreshed it meanwhile
            body = _call(
                "POST",
                f"{self.host}/api/users/auth/refresh/",
                expected=(200,),
                json={"refresh": self.customer.refresh},
            )
            self.customer.access = str(body["access"])
            self.customer.refresh = str(body.get("refresh", self.customer.refresh))

    def _request(self, method: str, path: str, *, name: str, **kwargs: Any) -> Any:
        token = self.customer.access
        with self.client.request(
            method, path, name=name, headers=self._headers(), catch_response=True, **kwargs
        ) as response:
            if response.status_code == 401:
                response.success()  # counted as the retry below
                self._refresh(token)
                return self.client.request(method, path, name=name, headers=self._headers(), **kwargs)
            if response.status_code >= 400:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            return response


class OrderingCustomer(_Customer):
    """Places orders at LOAD_RATE a second between all of them, and reads each back."""

    fixed_count = ORDERING_USERS
    wait_time = constant_throughput(RATE / ORDERING_USERS)

    @task
    def place_order(self) -> None:
        assert FIXTURE is not None
        outcome = OUTCOME_ROUND[next(_order_count) % len(OUTCOME_ROUND)]
        body = {"lines": [{"product_id": FIXTURE.products[outcome], "quantity": random.randint(1, 3)}]}
        response = self._place(body, outcome)
        if response is not None and response.status_code in (201, 202):
            self._request("GET", f"/api/orders/{response.json()['id']}/", name="/api/orders/[id]/")

    def _place(self, body: dict[str, Any], outcome: str) -> Any:
        token = self.customer.access
        headers = {**self._headers(), "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post(
            "/api/orders/", json=body, headers=headers, name=f"/api/orders/ [{outcome}]", catch_response=True
        ) as response:
            if response.status_code == 401:
                response.success()
                self._refresh(token)
                return None
            if response.status_code not in (201, 202):
                response.failure(f"{response.status_code}: {response.text[:200]}")
            return response


class BrowsingCustomer(_Customer):
    """Reads the catalogue like a shopper: pages, searches, a category, product pages."""

    weight = 1
    wait_time = constant_throughput(1.0)

    @task(3)
    def catalogue(self) -> None:
        self._request("GET", "/api/products/", name="/api/products/", params={"page": 1})

    @task(3)
    def search(self) -> None:
        self._request(
            "GET", "/api/products/", name="/api/products/?search", params={"search": random.choice(SEARCHES)}
        )

    @task(1)
    def category(self) -> None:
        self._request("GET", "/api/products/", name="/api/products/?category", params={"category": "coffee"})

    @task(4)
    def product_page(self) -> None:
        assert FIXTURE is not None
        product_id = random.choice(FIXTURE.catalogue)
        self._request("GET", f"/api/products/{product_id}/", name="/api/products/[id]/")
