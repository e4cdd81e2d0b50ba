"""A customer in the storefront, in Debian's chromium, against the whole platform."""

from __future__ import annotations

import uuid
from decimal import Decimal

from conftest import (
    STOREFRONT_URL,
    WIDTHS,
    log_in,
    log_out,
    look_at,
    new_page,
    new_product,
    register_in_browser,
    set_stock,
)
from platform_client import Platform
from playwright.sync_api import Browser, Page, expect


def checkout(page: Page) -> int:
    page.goto("/cart/")
    page.click("form.checkout button")
    page.wait_for_url(f"{STOREFRONT_URL}/orders/*/")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def test_a_customer_registers_searches_orders_and_sees_it_confirmed_live(
    page: Page, platform: Platform
) -> None:
    tag = f"Tasting{uuid.uuid4().hex[:6]}"
    new_product(platform, f"{tag} mug", price=Decimal("8.00"), stock=10)
    new_product(platform, f"{tag} beans", price=Decimal("14.50"), stock=10)
    shopper = register_in_browser(page, platform, balance=Decimal("100.00"))
    log_out(page)
    log_in(page, shopper.email, shopper.password)

    page.fill("#search", tag)
    page.click("form.filters button[type=submit]")
    expect(page.locator("#results .card")).to_have_count(2)
    look_at(page, "catalogue-search")
    for name in (f"{tag} mug", f"{tag} beans"):
        page.click(f"button[aria-label='Add to cart: {name}']")
        expect(page.locator(".msg.success")).to_contain_text(f"{name} added")
    expect(page.locator(".count")).to_have_text("2")

    page.goto("/cart/")
    expect(page.locator("#cart-total")).to_have_text("22.50 EUR")
    # A double click on "Place the order" sends the form twice with one Idempotency-Key.
    page.dblclick("form.checkout button")
    page.wait_for_url(f"{STOREFRONT_URL}/orders/*/")
    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator("#order-status")).to_have_text("CONFIRMED", timeout=60_000)
    assert page.evaluate("window.stillTheSamePage === true"), "the order page was reloaded"
    expect(page.locator(".timeline")).to_contain_text("Wallet charged")
    look_at(page, "order-confirmed")

    page.goto("/orders/")
    expect(page.locator("table.lines tbody tr")).to_have_count(1)
    page.goto("/wallet/")
    expect(page.locator("#balance")).to_have_text("77.50 EUR")


def test_out_of_stock_and_insufficient_funds_are_said_in_words(page: Page, platform: Platform) -> None:
    tag = f"Scarce{uuid.uuid4().hex[:6]}"
    gone = new_product(platform, f"{tag} grinder", price=Decimal("5.00"), stock=1)
    dear = new_product(platform, f"{tag} machine", price=Decimal("900.00"), stock=3)
    register_in_browser(page, platform, balance=Decimal("20.00"))

    page.goto(f"/products/{gone}/")
    page.click("article form button[type=submit]")
    set_stock(platform, gone, 0)  # sold out between the cart and the checkout
    page.goto(f"/products/{gone}/")
    expect(page.locator("#availability")).to_have_text("Out of stock")
    expect(page.locator("article button")).to_have_text("Sold out")
    expect(page.locator("article button")).to_be_disabled()
    checkout(page)
    expect(page.locator("#order-status")).to_have_text("CANCELLED", timeout=60_000)
    expect(page.locator("#cancel-reason")).to_contain_text("out of stock")
    look_at(page, "order-out-of-stock")

    page.goto(f"/products/{dear}/")
    page.click("article form button[type=submit]")
    checkout(page)
    expect(page.locator("#order-status")).to_have_text("CANCELLED", timeout=60_000)
    expect(page.locator("#cancel-reason")).to_contain_text("wallet balance is too low")


def test_a_customer_gets_no_console(page: Page, platform: Platform) -> None:
    register_in_browser(page, platform, balance=Decimal("0"))
    expect(page.locator("header nav")).not_to_contain_text("Console")
    response = page.goto("/console/")
    assert response is not None
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("header nav")).not_to_contain_text("Console")
    look_at(page, "console-forbidden")


def test_every_storefront_page_is_accessible_and_fits_both_widths(
    browser: Browser, platform: Platform
) -> None:
    product = new_product(platform, f"Layout{uuid.uuid4().hex[:6]} kettle", price=Decimal("30.00"), stock=5)
    for width in WIDTHS:
        page = new_page(browser, width)
        try:
            for path, name in (
                ("/", "catalogue"),
                (f"/products/{product}/", "product"),
                ("/login/", "login"),
            ):
                page.goto(path)
                look_at(page, name)
            page.goto("/register/")
            look_at(page, "register")
            register_in_browser(page, platform, balance=Decimal("50.00"))
            page.goto(f"/products/{product}/")
            page.click("article form button[type=submit]")
            page.goto("/cart/")
            look_at(page, "cart")
            order_id = checkout(page)
            expect(page.locator("#order-status")).to_have_text("CONFIRMED", timeout=60_000)
            for path, name in (
                (f"/orders/{order_id}/", "order"),
                ("/orders/", "orders"),
                ("/wallet/", "wallet"),
                ("/profile/", "profile"),
                ("/no-such-page/", "not-found"),
            ):
                page.goto(path)
                look_at(page, name)
        finally:
            page.context.close()
