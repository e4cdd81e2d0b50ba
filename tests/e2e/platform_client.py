"""Talking to the running platform the way a client does: through the gateway.

Also the few operator actions a scenario needs (restarting or killing a
process through the devstack, deactivating a user with manage.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY_URL = os.environ.get(
    "COMPTOIR_GATEWAY_URL", f"http://127.0.0.1:{os.environ.get('COMPTOIR_API_GATEWAY_PORT', '8000')}"
)
STAFF_EMAIL = "staff@comptoir.dev"
STAFF_PASSWORD = "Comptoir-staff-2026"
TERMINAL = {"CONFIRMED", "CANCELLED"}

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], *, timeout_s: float, what: str, interval_s: float = 0.2) -> T:
    """Polls `probe` until it returns something other than None/False, or fails after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


# ------------------------------------------------------------------ processes


def devstack(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT,
        check=True,
        timeout=240,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
    )


def processes_of(service: str) -> list[str]:
    procfile = REPO_ROOT / "services" / service / "Procfile"
    names = []
    for line in procfile.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            names.append(f"{service}.{line.split(':', 1)[0].strip()}")
    return names


def kill_hard(name: str) -> int:
    """SIGKILL a devstack process and its whole group (a worker and its children)."""
    pid = int((REPO_ROOT / ".devstack" / "run" / f"{name}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    return pid


def deactivate_user(user_id: int) -> None:
    """The account's flag only, straight in user_service's database: its access tokens
    stay valid (as when a deactivation races an order already on its way), so the saga's
    own user check is what is tested. Closing an account for real (admin, `user_deactivate`)
    also revokes the tokens: see test_zero_trust."""
    django_shell(
        "user_service",
        "from users.models import User;"
        f"assert User.objects.filter(pk={int(user_id)}).update(is_active=False) == 1",
    )


def close_account(user_id: int) -> None:
    """Closes the account as staff do (`user_deactivate`): its tokens are refused at the
    gateway at once and `user.deactivated` goes out."""
    django_shell(
        "user_service",
        f"from users.services import user_deactivate; assert user_deactivate(user_id={int(user_id)})",
    )


def manage(service: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`manage.py ARGS` of a service, with that service's own environment
    (`python -m devstack manage`); the caller judges the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "devstack", "manage", service, *args],
        cwd=REPO_ROOT,
        check=False,
        timeout=180,
        capture_output=True,
        text=True,
    )


def django_shell(service: str, code: str) -> str:
    """Runs Python in a service's Django shell (its own database, its own ORM)."""
    result = manage(service, "shell", "-c", code)
    assert result.returncode == 0, f"{service} shell failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# ----------------------------------------------------------------------- API


@dataclass
class Customer:
    user_id: int
    email: str
    token: str
    password: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Platform:
    def __init__(self) -> None:
        self.http = httpx.Client(base_url=GATEWAY_URL, timeout=30.0)
        self.staff_token = self.login(STAFF_EMAIL, STAFF_PASSWORD)

    @property
    def staff(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff_token}"}

    def check(self, response: httpx.Response, *expected: int) -> Any:
        assert response.status_code in expected, (
            f"{response.request.method} {response.request.url} → {response.status_code}: "
            f"{response.text[:500]}"
        )
        return response.json() if response.content else None

    def login(self, email: str, password: str) -> str:
        body = self.check(
            self.http.post("/api/users/auth/login/", json={"email": email, "password": password}), 200
        )
        return str(body["access"])

    def new_customer(self, *, balance: Decimal) -> Customer:
        email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
        password = f"E2e-{uuid.uuid4().hex}"
        user = self.check(
            self.http.post(
                "/api/users/register/",
                json={"email": email, "password": password, "full_name": "E2E Customer"},
            ),
            201,
        )
        if balance:
            self.check(
                self.http.post(
                    f"/api/payments/wallets/{user['id']}/credit/",
                    json={"amount": str(balance)},
                    headers=self.staff,
                ),
                200,
            )
        token = self.login(email, password)
        return Customer(user_id=int(user["id"]), email=email, token=token, password=password)

    def new_product(self, *, stock: int, price: Decimal) -> int:
        sku = f"E2E-{uuid.uuid4().hex[:10].upper()}"
        product = self.check(
            self.http.post(
                "/api/products/",
                json={
                    "sku": sku,
                    "name": f"E2E product {sku}",
                    "description": "made by the scenario suite",
                    "price": str(price),
                    "currency": "EUR",
                    "category": "coffee",
                    "is_active": True,
                },
                headers=self.staff,
            ),
            201,
        )
        self.check(
            self.http.put(
                f"/api/products/{product['id']}/stock/", json={"quantity": stock}, headers=self.staff
            ),
            200,
        )
        return int(product["id"])

    def stock(self, product_id: int) -> int:
        return int(
            self.check(self.http.get(f"/api/products/{product_id}/", headers=self.staff), 200)["stock"]
        )

    def place_order(
        self, customer: Customer, lines: Iterable[tuple[int, int]], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = dict(customer.headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = {"lines": [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]}
        result: dict[str, Any] = self.check(
            self.http.post("/api/orders/", json=body, headers=headers), 200, 201, 202
        )
        return result

    def order(self, customer: Customer, order_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.check(
            self.http.get(f"/api/orders/{order_id}/", headers=customer.headers), 200
        )
        return result

    def wait_terminal(self, customer: Customer, order_id: int, *, timeout_s: float = 90) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            order = self.order(customer, order_id)
            return order if order["status"] in TERMINAL else None

        return wait_for(probe, timeout_s=timeout_s, what=f"order {order_id} to finish")

    def orders_of(self, customer: Customer) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        url: str | None = "/api/orders/?page_size=100"
        while url:
            page = self.check(self.http.get(url, headers=customer.headers), 200)
            found.extend(page["results"])
            url = page["next"]
        return found

    def balance(self, customer: Customer) -> Decimal:
        return Decimal(
            self.check(self.http.get("/api/payments/wallet/", headers=customer.headers), 200)["balance"]
        )

    def payments(self, customer: Customer) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        url: str | None = "/api/payments/?page_size=100"
        while url:
            page = self.check(self.http.get(url, headers=customer.headers), 200)
            found.extend(page["results"])
            url = page["next"]
        return found

    def mails_to(self, email: str) -> list[dict[str, Any]]:
        page = self.check(
            self.http.get("/api/emails/", params={"to": email, "page_size": 100}, headers=self.staff), 200
        )
        results: list[dict[str, Any]] = page["results"]
        return results


def gateway_ready() -> bool:
    """The gateway answers, and its readiness report says every upstream is ready."""
    try:
        response = httpx.get(f"{GATEWAY_URL}/health/ready", timeout=5)
        return response.status_code == 200 and response.json()["failed"] == []
    except httpx.HTTPError:
        return False


def ready_platform(timeout_s: float = 120) -> Platform:
    """A client of the platform, once the gateway and its upstreams are ready (a session fixture's)."""
    wait_for(gateway_ready, timeout_s=timeout_s, what="the gateway and its upstreams to be ready")
    return Platform()
