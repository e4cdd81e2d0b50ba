"""The storefront in a real browser: Debian's chromium driven by Playwright.

The whole platform runs (`make e2e`, or `make up` then pytest here). No browser is
downloaded: Playwright launches /usr/bin/chromium (CHROMIUM to move it). Every page
a test visits can be checked with `look_at`: a screenshot at the viewport's width
kept under the reports folder, axe-core (from the storefront's node_modules)
finding no serious or critical violation, and no horizontal scrolling.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_client import REPO_ROOT, Platform, ready_platform, wait_for
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

STOREFRONT_URL = os.environ.get(
    "COMPTOIR_STOREFRONT_URL", f"http://127.0.0.1:{os.environ.get('COMPTOIR_STOREFRONT_PORT', '8010')}"
)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = REPO_ROOT / "services" / "storefront" / "node_modules" / "axe-core" / "axe.min.js"
ARTEFACTS = Path(
    os.environ.get("BROWSER_ARTEFACTS", str(REPO_ROOT / ".devstack" / "test-reports" / "browser"))
)
WIDTHS = {"phone": (375, 812), "desktop": (1280, 900)}


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    def storefront_ready() -> bool:
        try:
            return httpx.get(f"{STOREFRONT_URL}/health/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(storefront_ready, timeout_s=120, what="the storefront to be ready")
    client = ready_platform()
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    )
    yield browser
    browser.close()


def new_page(browser: Browser, width: str = "desktop") -> Page:
    w, h = WIDTHS[width]
    # bypass_csp: axe-core is injected as an inline script, which the site's CSP refuses.
    context: BrowserContext = browser.new_context(
        base_url=STOREFRONT_URL, viewport={"width": w, "height": h}, bypass_csp=True
    )
    context.set_default_timeout(15_000)
    return context.new_page()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = new_page(browser)
    yield page
    page.context.close()


def look_at(page: Page, name: str) -> None:
    """Screenshot, accessibility and layout checks of the page as it is now."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^a-z0-9_-]+", "-", name.lower())
    page.screenshot(path=str(ARTEFACTS / f"{safe}-{width}px.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    serious = [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name} at {width}px: {json.dumps(serious, indent=1)}"
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"


@dataclass
class Shopper:
    email: str
    password: str
    user_id: int


def register_in_browser(page: Page, platform: Platform, *, balance: Decimal) -> Shopper:
    """Registers through the storefront's form (which logs in), then credits the wallet as staff."""
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    # Not hex like the address: two random hex strings share enough characters for
    # user_service to refuse the password as "too similar to the email" now and then.
    password = f"Kettle-{secrets.token_urlsafe(12)}"
    page.goto("/register/")
    page.fill("#full_name", "Browser Shopper")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{STOREFRONT_URL}/")
    token = platform.login(email, password)
    me = platform.check(
        platform.http.get("/api/users/me/", headers={"Authorization": f"Bearer {token}"}), 200
    )
    if balance:
        platform.check(
            platform.http.post(
                f"/api/payments/wallets/{me['id']}/credit/",
                json={"amount": str(balance)},
                headers=platform.staff,
            ),
            200,
        )
    return Shopper(email=email, password=password, user_id=int(me["id"]))


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login/")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{STOREFRONT_URL}/")


def log_out(page: Page) -> None:
    page.click("header form button")
    page.wait_for_url(f"{STOREFRONT_URL}/")


def new_product(platform: Platform, name: str, *, price: Decimal, stock: int) -> int:
    sku = f"BR-{uuid.uuid4().hex[:10].upper()}"
    product = platform.check(
        platform.http.post(
            "/api/products/",
            json={
                "sku": sku,
                "name": name,
                "description": "made by the browser suite",
                "price": str(price),
                "currency": "EUR",
                "category": "coffee",
                "is_active": True,
            },
            headers=platform.staff,
        ),
        201,
    )
    set_stock(platform, int(product["id"]), stock)
    return int(product["id"])


def set_stock(platform: Platform, product_id: int, stock: int) -> None:
    platform.check(
        platform.http.put(
            f"/api/products/{product_id}/stock/", json={"quantity": stock}, headers=platform.staff
        ),
        200,
    )
