"""The operations console, as the demo staff account, in Debian's chromium."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from conftest import STOREFRONT_URL, WIDTHS, log_in, look_at, new_page, new_product
from platform_client import STAFF_EMAIL, STAFF_PASSWORD, Platform
from playwright.sync_api import Browser, Page, expect
from test_zero_trust import confirmed_order, forged_cancellation, kafka, write


@pytest.fixture
def staff_page(browser: Browser) -> Iterator[Page]:
    page = new_page(browser)
    log_in(page, STAFF_EMAIL, STAFF_PASSWORD)
    yield page
    page.context.close()


def test_a_poisoned_message_is_in_the_dlq_view_and_replays_once(staff_page: Page, platform: Platform) -> None:
    page = staff_page
    # An order.cancelled that names the wrong producer: every consumer dead-letters it.
    customer, order = confirmed_order(platform)
    poisoned = forged_cancellation(order, customer, producer="payment_service")
    assert write(kafka("admin"), poisoned) is None

    def find_letter() -> bool:
        page.goto(f"/console/dlq/?service=email_service&topic={'orders.order-cancelled'}")
        return page.locator("#letters tbody tr", has_text=poisoned["event_id"]).count() > 0

    for _ in range(60):  # bounded: the consumer dead-letters it within seconds
        if find_letter():
            break
        page.wait_for_timeout(1000)
    row = page.locator("#letters tbody tr", has_text=poisoned["event_id"])
    expect(row).to_have_count(1)
    look_at(page, "console-dlq")
    row.locator("a").first.click()
    expect(page.locator("pre").first).to_contain_text("payment_service")
    expect(page.locator("#replayed")).to_have_text("not yet")
    look_at(page, "console-dead-letter")
    page.click("#replay")
    expect(page.locator(".msg.success")).to_contain_text("Replayed to")
    expect(page.locator("#replayed")).not_to_have_text("not yet")
    page.click("#replay")
    expect(page.locator(".msg.error")).to_be_visible()
    expect(page.locator(".msg.success")).to_have_count(0)


def test_an_orders_trace_waterfall_shows_four_services(staff_page: Page, platform: Platform) -> None:
    page = staff_page
    token = platform.login(STAFF_EMAIL, STAFF_PASSWORD)
    me = platform.check(
        platform.http.get("/api/users/me/", headers={"Authorization": f"Bearer {token}"}), 200
    )
    platform.check(
        platform.http.post(
            f"/api/payments/wallets/{me['id']}/credit/", json={"amount": "50.00"}, headers=platform.staff
        ),
        200,
    )
    product = new_product(platform, "Traced tamper", price=Decimal("9.00"), stock=5)
    page.goto(f"/products/{product}/")
    page.click("article form button[type=submit]")
    page.goto("/cart/")
    page.click("form.checkout button")
    page.wait_for_url(f"{STOREFRONT_URL}/orders/*/")
    expect(page.locator("#order-status")).to_have_text("CONFIRMED", timeout=60_000)
    page.click("text=Trace of this order")
    trace_url = page.url
    for _ in range(30):  # bounded: spans reach the trace backend a few seconds after the work
        if page.locator(".legend li").count() >= 4:
            break
        page.wait_for_timeout(1000)
        page.goto(trace_url)
    services = page.locator(".legend li").all_inner_texts()
    assert len(services) >= 4, services
    assert page.locator("#waterfall li").count() >= 4
    look_at(page, "console-trace")


def test_every_console_page_is_accessible_and_fits_both_widths(browser: Browser, platform: Platform) -> None:
    for width in WIDTHS:
        page = new_page(browser, width)
        try:
            log_in(page, STAFF_EMAIL, STAFF_PASSWORD)
            page.goto("/console/")
            expect(page.locator("#health table")).to_be_visible(timeout=30_000)
            expect(page.locator("#events .panel").first).to_be_visible(timeout=30_000)
            page.wait_for_selector(".chart .uplot, .chart p", timeout=30_000)
            look_at(page, "console-overview")
            for path, name in (
                ("/console/dlq/?service=order_service", "console-dlq-order"),
                ("/console/dlq/order_service/purge/?topic=orders.order-created", "console-purge"),
                ("/console/sagas/", "console-sagas"),
                ("/console/mails/", "console-mails"),
            ):
                page.goto(path)
                look_at(page, name)
        finally:
            page.context.close()
