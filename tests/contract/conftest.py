"""The fuzz run talks to the platform the way a client does: through the gateway,
with real tokens of a customer and of a staff user (`make e2e` starts the
platform with per-user limits raised, as for the scenario suite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from platform_client import GATEWAY_URL, STAFF_EMAIL, STAFF_PASSWORD, Platform, ready_platform, wait_for
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema

HERE = Path(__file__).resolve().parent
ROLES = ["anonymous", "customer", "staff"]


@dataclass(frozen=True)
class Caller:
    """Who sends the fuzzed requests, and which objects a staff write may touch."""

    role: str
    token: str | None
    # Path parameters a staff write is pointed at: the suite's own objects, so
    # the fuzz run never rewrites or deletes the catalogue and wallets it did not make.
    own: dict[str, dict[str, int]] = field(default_factory=dict)
    # Email and password: an operation that ends the session (logout) is sent with
    # a session of its own, so the caller's token stays valid for the rest of the run.
    credentials: tuple[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    client = ready_platform()
    yield client
    client.http.close()


def fetch_published_document() -> dict[str, Any]:
    """The gateway's /openapi.json once every service's part is in it."""

    def complete() -> dict[str, Any] | None:
        try:
            response = httpx.get(f"{GATEWAY_URL}/openapi.json", timeout=10)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        document: dict[str, Any] = response.json()
        return None if "x-unavailable-services" in document["info"] else document

    return wait_for(complete, timeout_s=120, what="the gateway's document of every service", interval_s=1)


def load_gateway_schema() -> OpenApiSchema:
    """Loaded when the suite is collected, so that each operation is one test."""
    config = SchemathesisConfig.from_path(str(HERE / "schemathesis.toml"))
    schema = schemathesis.openapi.from_dict(fetch_published_document(), config=config)
    schema.config.update(base_url=GATEWAY_URL)
    return schema


@pytest.fixture(scope="session")
def published_document(platform: Platform) -> dict[str, Any]:
    return fetch_published_document()


@pytest.fixture(scope="session")
def callers(platform: Platform) -> dict[str, Caller]:
    customer = platform.new_customer(balance=Decimal("0"))
    product_id = platform.new_product(stock=5, price=Decimal("1.00"))
    slug = f"fuzz-{uuid.uuid4().hex[:10]}"
    category = platform.check(
        platform.http.post(
            "/api/products/categories/", json={"name": slug, "slug": slug}, headers=platform.staff
        ),
        201,
    )
    own = {
        "/api/products/{id}/": {"id": product_id},
        "/api/products/{id}/stock/": {"id": product_id},
        "/api/products/categories/{id}/": {"id": int(category["id"])},
        "/api/payments/wallets/{user_id}/credit/": {"user_id": customer.user_id},
    }
    return {
        "anonymous": Caller("anonymous", None),
        "customer": Caller("customer", customer.token, credentials=(customer.email, customer.password)),
        "staff": Caller("staff", platform.staff_token, own, credentials=(STAFF_EMAIL, STAFF_PASSWORD)),
    }
