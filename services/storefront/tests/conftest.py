"""The storefront's views against a stand-in gateway (httpx.MockTransport).

The stand-in speaks the gateway's public API as the OpenAPI documents describe
it, with the behaviours the storefront must cope with: refresh-token rotation
(a spent refresh token revokes the login), expiring access tokens, idempotent
order placement, the platform's error body. The real platform is exercised by
tests/browser.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.core.cache import cache
from django.test import Client

from shop import gateway


def error(status: int, code: str, message: str, details: Any = None) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "details": details or {}, "trace_id": "req-" + code}}
    return httpx.Response(status, json=body)


@dataclass
class StandInGateway:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, str] = field(default_factory=dict)  # access token -> email
    refresh: dict[str, str] = field(default_factory=dict)  # live refresh token -> email
    spent: set[str] = field(default_factory=set)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    refreshes: int = 0
    fail_next: httpx.Response | None = None
    headers_seen: list[httpx.Headers] = field(default_factory=list)
    # Canned answers by path (the operations routes the console reads).
    routes: dict[str, httpx.Response] = field(default_factory=dict)

    def add_user(self, email: str, password: str, *, is_staff: bool = False) -> None:
        self.users[email] = {
            "id": len(self.users) + 1,
            "email": email,
            "password": password,
            "full_name": "",
            "is_staff": is_staff,
        }

    def add_product(self, pid: int, name: str, price: str, stock: int) -> None:
        self.products[pid] = {
            "id": pid,
            "sku": f"SKU-{pid}",
            "name": name,
            "description": "",
            "price": price,
            "currency": "EUR",
            "category": "coffee",
            "is_active": True,
            "stock": stock,
        }

    def pair(self, email: str) -> dict[str, Any]:
        access, refresh = secrets.token_hex(8), secrets.token_hex(8)
        self.access[access] = email
        self.refresh[refresh] = email
        return {"access": access, "refresh": refresh, "token_type": "Bearer", "expires_in": 900}

    def expire_access_tokens(self) -> None:
        self.access.clear()

    def caller(self, request: httpx.Request) -> dict[str, Any] | None:
        header = request.headers.get("Authorization", "")
        email = self.access.get(header.removeprefix("Bearer "))
        return self.users[email] if email else None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.calls.append((method, path))
        self.headers_seen.append(request.headers)
        if self.fail_next is not None:
            response, self.fail_next = self.fail_next, None
            return response
        body = json.loads(request.content) if request.content else {}
        if path == "/api/users/auth/login/":
            user = self.users.get(body.get("email", ""))
            if user is None or user["password"] != body.get("password"):
                return error(401, "invalid_credentials", "Email or password is incorrect.")
            return httpx.Response(200, json=self.pair(user["email"]))
        if path == "/api/users/auth/refresh/":
            self.refreshes += 1
            token = body.get("refresh", "")
            if token in self.spent:
                self.refresh.clear()  # the whole login is revoked
                return error(401, "refresh_token_reused", "This refresh token was already used.")
            email = self.refresh.pop(token, None)
            if email is None:
                return error(401, "invalid_refresh_token", "The refresh token is not valid.")
            self.spent.add(token)
            return httpx.Response(200, json=self.pair(email))
        if path == "/api/users/register/":
            if "@" not in body.get("email", ""):
                return error(
                    400, "validation_error", "Invalid input.", {"email": ["Enter a valid email address."]}
                )
            self.add_user(body["email"], body["password"])
            user = self.users[body["email"]]
            return httpx.Response(201, json={"id": user["id"], "email": user["email"], "full_name": ""})
        if path == "/api/products/categories/":
            return httpx.Response(
                200, json={"count": 1, "results": [{"id": 1, "name": "Coffee", "slug": "coffee"}]}
            )
        if path == "/api/products/":
            found = [p for p in self.products.values() if request.url.params.get("search", "") in p["name"]]
            return httpx.Response(
                200, json={"count": len(found), "next": None, "previous": None, "results": found}
            )
        if path.startswith("/api/products/"):
            pid = int(path.split("/")[3])
            if pid not in self.products:
                return error(404, "not_found", "No such product.")
            return httpx.Response(200, json=self.products[pid])
        user = self.caller(request)
        if user is None:
            return error(401, "not_authenticated", "Authentication credentials were not provided.")
        if path in self.routes:
            return self.routes[path]
        if path == "/api/users/me/":
            return httpx.Response(200, json={**user, "date_joined": "2026-01-01T00:00:00Z"})
        if path == "/api/orders/" and method == "POST":
            key = request.headers.get("Idempotency-Key", "")
            if key in self.keys:
                return httpx.Response(200, json=self.orders[self.keys[key]])
            for line in body["lines"]:
                if self.products[line["product_id"]]["stock"] < line["quantity"]:
                    return error(409, "insufficient_stock", "Not enough stock.")
            order_id = len(self.orders) + 1
            self.orders[order_id] = self.order(order_id, "PENDING")
            self.keys[key] = order_id
            return httpx.Response(202, json=self.orders[order_id])
        if path.startswith("/api/orders/"):
            order_id = int(path.split("/")[3])
            return httpx.Response(200, json=self.orders[order_id])
        return error(404, "not_found", "Not found.")

    def order(self, order_id: int, status: str, reason: str | None = None) -> dict[str, Any]:
        return {
            "id": order_id,
            "status": status,
            "cancel_reason": reason,
            "total": "10.00",
            "currency": "EUR",
            "lines": [],
            "created_at": "2026-12-05T03:00:00Z",
            "updated_at": "2026-12-05T03:00:00Z",
            "saga_mode": "orchestration",
            "status_history": [],
            "timeline": [],
        }


@pytest.fixture(autouse=True)
def _cache(settings: Any) -> Iterator[None]:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> Iterator[StandInGateway]:
    stand_in = StandInGateway()
    stand_in.add_user("alice@example.com", ALICE_PASSWORD)
    stand_in.add_user("staff@example.com", "Staff-pass-2026", is_staff=True)
    stand_in.add_product(1, "Espresso beans", "12.50", 5)
    stand_in.add_product(2, "Filter papers", "3.00", 0)
    gateway.use_transport(httpx.MockTransport(stand_in))
    yield stand_in
    gateway.use_transport(None)


ALICE_PASSWORD = "Alice-pass-2026"


def log_in(client: Client, email: str = "alice@example.com", password: str = ALICE_PASSWORD) -> None:
    response = client.post("/login/", {"email": email, "password": password})
    assert response.status_code == 302, response.content
