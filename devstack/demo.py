"""`make demo`: watch the order saga work, in both modes, on the running platform.

With `make up` running, places three orders in each saga mode through the
gateway — one that succeeds, one out of stock, one the wallet cannot pay — and
prints each order's outcome and saga timeline. order_service's processes are
restarted with SAGA_MODE set for each mode, and left in the default mode
(orchestration) at the end.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import httpx

from . import _platform
from ._config import HOST, SERVICE_PORTS
from ._process import StartError

GATEWAY = os.environ.get("COMPTOIR_GATEWAY_URL", f"http://{HOST}:{SERVICE_PORTS['api_gateway']}")
ALICE = ("alice@comptoir.dev", "Alice-demo-2026")  # 500.00 EUR in the demo wallet
BOB = ("bob@comptoir.dev", "Bob-demo-2026")  # 20.00 EUR
SCENARIOS = [
    ("succeeds", ALICE, "COF-ETH-250", 1),
    ("out of stock", ALICE, "TEA-ROO-100", 1),
    ("insufficient funds", BOB, "GEAR-KETTLE", 1),
]


class DemoError(RuntimeError):
    pass


def _json(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise DemoError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
    return response.json()


def _token(client: httpx.Client, email: str, password: str) -> str:
    body = _json(client.post("/api/users/auth/login/", json={"email": email, "password": password}), 200)
    return str(body["access"])


def _product_id(client: httpx.Client, sku: str) -> int:
    page = _json(client.get("/api/products/", params={"search": sku}), 200)
    for product in page["results"]:
        if product["sku"] == sku:
            return int(product["id"])
    raise DemoError(f"product {sku} not in the catalogue: did `make up` seed the demo data?")


def _switch_mode(mode: str) -> None:
    os.environ["SAGA_MODE"] = mode
    for proc in _platform.processes("order_service"):
        proc.stop()
        proc.start()


def _wait_terminal(client: httpx.Client, token: str, order_id: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        order: dict[str, Any] = _json(
            client.get(f"/api/orders/{order_id}/", headers={"Authorization": f"Bearer {token}"}), 200
        )
        if order["status"] in ("CONFIRMED", "CANCELLED") or time.monotonic() > deadline:
            return order
        time.sleep(0.2)


def _print_order(label: str, order: dict[str, Any]) -> None:
    reason = f" ({order['cancel_reason']})" if order.get("cancel_reason") else ""
    print(
        f"\n  order {order['id']} — {label}: {order['status']}{reason}, "
        f"total {order['total']} {order['currency']}"
    )
    for step in order.get("timeline", []):
        error = f"  {step['error']}" if step.get("error") else ""
        print(f"    {step['at']}  {step['step']:<18} {step['status']:<12}{error}")


def main() -> int:
    with httpx.Client(base_url=GATEWAY, timeout=30) as client:
        try:
            tokens = {email: _token(client, email, password) for email, password in (ALICE, BOB)}
            for mode in ("orchestration", "choreography"):
                print(f"\n== SAGA_MODE={mode}")
                _switch_mode(mode)
                for label, (email, _), sku, quantity in SCENARIOS:
                    body = {"lines": [{"product_id": _product_id(client, sku), "quantity": quantity}]}
                    headers = {"Authorization": f"Bearer {tokens[email]}"}
                    placed = _json(client.post("/api/orders/", json=body, headers=headers), 201, 202)
                    _print_order(f"{label}, by {email}", _wait_terminal(client, tokens[email], placed["id"]))
            _switch_mode("orchestration")
        except (DemoError, StartError, httpx.HTTPError) as error:
            print(f"\ndemo: {error}\nIs the platform up? Run `make up` first.", file=sys.stderr)
            return 1
    print("\nMails are in .devstack/mail/new/ (one per order).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
