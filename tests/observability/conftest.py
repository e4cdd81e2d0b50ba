"""Fixtures over the running platform: the gateway, Prometheus and the trace backend."""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_client import GATEWAY_URL, Customer, Platform, ready_platform

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = Path(os.environ.get("COMPTOIR_DEVSTACK_DIR", str(REPO_ROOT / ".devstack"))) / "logs"
PROMETHEUS_URL = f"http://127.0.0.1:{os.environ.get('COMPTOIR_PROMETHEUS_PORT', '9090')}"
TRACES_URL = f"http://127.0.0.1:{os.environ.get('COMPTOIR_TRACES_UI_PORT', '16686')}"


def prometheus(query: str, *, time_s: float | None = None) -> list[dict[str, Any]]:
    params = {"query": query, **({"time": str(time_s)} if time_s else {})}
    response = httpx.get(f"{PROMETHEUS_URL}/api/v1/query", params=params, timeout=10)
    body = response.json()
    assert response.status_code == 200, f"{query}: {body}"
    assert body["status"] == "success", f"{query}: {body}"
    return list(body["data"]["result"])


def trace_spans(trace_id: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The spans of a trace and {process id: service name}, from the trace backend's query API."""
    response = httpx.get(f"{TRACES_URL}/api/traces/{trace_id}", timeout=10)
    if response.status_code != 200:
        return [], {}
    data = response.json().get("data") or []
    if not data:
        return [], {}
    processes = {pid: p["serviceName"] for pid, p in data[0]["processes"].items()}
    return list(data[0]["spans"]), processes


def log_lines_with(text: str) -> dict[str, list[dict[str, Any]]]:
    """{log file stem: [JSON records containing `text`]} over every process's log."""
    found: dict[str, list[dict[str, Any]]] = {}
    for log in sorted(LOG_DIR.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if text in line and line.startswith("{"):
                try:
                    found.setdefault(log.stem, []).append(json.loads(line))
                except ValueError:
                    continue
    return found


@dataclass
class PlacedOrder:
    order: dict[str, Any]
    trace_id: str
    customer: Customer


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    client = ready_platform()
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def placed_order(platform: Platform) -> PlacedOrder:
    """One order placed through the gateway with a trace id of our own, run to its end."""
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=Decimal("12.50"))
    trace_id = secrets.token_hex(16)
    headers = {**customer.headers, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    body = {"lines": [{"product_id": product, "quantity": 1}]}
    order = platform.check(platform.http.post("/api/orders/", json=body, headers=headers), 200, 201, 202)
    final = platform.wait_terminal(customer, int(order["id"]))
    return PlacedOrder(order=final, trace_id=trace_id, customer=customer)


@pytest.fixture(scope="session")
def short_load(platform: Platform, placed_order: PlacedOrder) -> None:
    """A little traffic of every kind, then two scrape intervals for Prometheus to see it."""
    with httpx.Client(base_url=GATEWAY_URL, timeout=10) as anonymous:
        for _ in range(10):
            anonymous.get("/api/products/")
            anonymous.get("/api/products/categories/")
        anonymous.get("/api/products/999999999/")
    platform.check(platform.http.get("/api/users/me/", headers=placed_order.customer.headers), 200)
    platform.check(platform.http.get("/api/payments/wallet/", headers=placed_order.customer.headers), 200)
    platform.check(platform.http.get("/api/emails/", headers=platform.staff), 200)
    time.sleep(12)


def encode(query: str) -> str:
    return urllib.parse.quote(query)


Probe = Callable[[], Any]
