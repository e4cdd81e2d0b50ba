"""Each service's Django admin, as staff reach it: at the service's own address, with
the seeded admin login, its static files served by the process itself (DEBUG off),
the outbox, inbox and saga rows listed and searchable. Real HTTP to the running
services, no test client."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest
from platform_client import STAFF_EMAIL, STAFF_PASSWORD, Platform, wait_for

from comptoir.ports import SERVICE_PORTS


def service_url(service: str) -> str:
    port = os.environ.get(f"COMPTOIR_{service.upper()}_PORT", str(SERVICE_PORTS[service]))
    return f"http://127.0.0.1:{port}"


@contextmanager
def admin_session(service: str) -> Iterator[httpx.Client]:
    """Logged in to `service`'s admin through its login form (CSRF token included)."""
    with httpx.Client(base_url=service_url(service), timeout=30.0) as client:
        form = client.get("/admin/login/", params={"next": "/admin/"})
        assert form.status_code == 200
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert match is not None, "the login form has no CSRF token"
        response = client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": match.group(1), "username": STAFF_EMAIL, "password": STAFF_PASSWORD},
        )
        assert response.status_code == 302, response.text[:500]
        assert response.headers["location"] == "/admin/"
        yield client


@pytest.fixture(scope="module")
def finished_order(platform: Platform) -> dict[str, object]:
    customer = platform.new_customer(balance=Decimal("50.00"))
    product = platform.new_product(stock=3, price=Decimal("7.00"))
    order = platform.place_order(customer, [(product, 1)])
    return platform.wait_terminal(customer, int(order["id"]))


def test_anonymous_visitors_are_sent_to_the_login_page() -> None:
    with httpx.Client(base_url=service_url("order_service"), timeout=30.0) as anonymous:
        response = anonymous.get("/admin/comptoir_events/outboxmessage/")

    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login/?next=/admin/comptoir_events/outboxmessage/"


def test_a_wrong_password_is_refused() -> None:
    with httpx.Client(base_url=service_url("order_service"), timeout=30.0) as client:
        form = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        response = client.post(
            "/admin/login/",
            data={"csrfmiddlewaretoken": token.group(1), "username": STAFF_EMAIL, "password": "not-it"},
        )
        after = client.get("/admin/")

    assert response.status_code == 200  # the form again, with its error
    assert "Please enter the correct" in response.text
    assert after.status_code == 302


def test_static_files_are_served_by_the_service_with_debug_off() -> None:
    with httpx.Client(base_url=service_url("order_service"), timeout=30.0) as anonymous:
        stylesheet = anonymous.get("/static/admin/css/base.css")
        script = anonymous.get("/static/admin/js/core.js")
        missing = anonymous.get("/static/admin/css/no-such-file.css")

    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert "body" in stylesheet.text
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
    # DEBUG is off: an unknown address gets the service's JSON 404, not Django's debug page.
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json()["error"]["code"] == "not_found"


def test_the_outbox_is_searchable_by_order_id(finished_order: dict[str, object]) -> None:
    order_id = str(finished_order["id"])
    event_type = "order.confirmed" if finished_order["status"] == "CONFIRMED" else "order.cancelled"
    with admin_session("order_service") as staff:
        found = staff.get("/admin/comptoir_events/outboxmessage/", params={"q": order_id})
        elsewhere = staff.get("/admin/comptoir_events/outboxmessage/", params={"q": "999999999"})

    assert found.status_code == 200
    assert (
        f'<td class="field-event_type">{event_type}</td><td class="field-key">{order_id}</td>' in found.text
    )
    assert '<link rel="stylesheet" href="/static/admin/css/base.css">' in found.text
    assert elsewhere.status_code == 200
    assert f'<td class="field-key">{order_id}</td>' not in elsewhere.text
    assert "0 outbox messages" in elsewhere.text


def test_the_order_saga_is_searchable_by_order_id(finished_order: dict[str, object]) -> None:
    order_id = str(finished_order["id"])
    with admin_session("order_service") as staff:
        sagas = staff.get("/admin/orders/ordersaga/", params={"q": order_id})
        steps = staff.get("/admin/orders/sagatimelineentry/", params={"q": order_id})

    assert sagas.status_code == 200
    assert "1 order saga" in sagas.text
    assert f"/admin/orders/ordersaga/{order_id}/change/" in sagas.text
    assert steps.status_code == 200
    assert f">order {order_id} ({finished_order['status']})</a>" in steps.text


def test_the_inbox_shows_what_a_consumer_handled(finished_order: dict[str, object]) -> None:
    event_type = "order.confirmed" if finished_order["status"] == "CONFIRMED" else "order.cancelled"
    with admin_session("email_service") as staff:

        def listed() -> str | None:
            page = staff.get("/admin/comptoir_events/inboxentry/", params={"q": event_type})
            assert page.status_code == 200
            return page.text if event_type in page.text else None

        text = wait_for(listed, timeout_s=60, what=f"email_service's inbox to list a {event_type}")

    assert "email_service." in text  # the consumer group's name
