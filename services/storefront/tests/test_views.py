from __future__ import annotations

import time

import httpx
import pytest
from django.core.cache import cache
from django.test import Client

from shop.gateway import Gateway

from .conftest import StandInGateway, log_in


def test_catalogue_lists_products_and_forwards_the_filters(client: Client, api: StandInGateway) -> None:
    response = client.get("/", {"search": "Espresso", "category": "coffee", "ordering": "-price"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Espresso beans" in html
    assert "Filter papers" not in html
    sent = next(h for (m, p), h in zip(api.calls, api.headers_seen, strict=True) if p == "/api/products/")
    assert sent["traceparent"].startswith("00-")
    assert sent["X-Forwarded-For"] == "127.0.0.1"  # the visitor's address (the test client's)


def test_an_htmx_search_gets_the_results_only(client: Client, api: StandInGateway) -> None:
    response = client.get("/", {"search": "beans"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "Espresso beans" in html
    assert "<html" not in html


def test_a_product_page_shows_price_and_availability(client: Client, api: StandInGateway) -> None:
    assert "In stock: 5 available" in client.get("/products/1/").content.decode()
    sold_out = client.get("/products/2/").content.decode()
    assert "Out of stock" in sold_out
    assert "Add to cart" not in sold_out
    assert "Sold out" in sold_out


def test_an_out_of_stock_product_is_not_added_to_the_cart(client: Client, api: StandInGateway) -> None:
    response = client.post("/cart/add/", {"product_id": 2, "quantity": 1}, follow=True)
    assert "is out of stock: it was not added to your cart." in response.content.decode()
    assert client.session.get("cart", {}) == {}


def test_a_missing_product_is_a_readable_404(client: Client, api: StandInGateway) -> None:
    response = client.get("/products/99/")
    assert response.status_code == 404
    assert "No such product." in response.content.decode()


def test_a_raw_upstream_failure_is_never_shown(client: Client, api: StandInGateway) -> None:
    api.fail_next = httpx.Response(502, text="<html>nginx exploded</html>")
    response = client.get("/products/1/")
    assert response.status_code == 502
    html = response.content.decode()
    assert "nginx exploded" not in html
    assert "try again in a moment" in html


def test_validation_errors_are_listed_by_field(client: Client, api: StandInGateway) -> None:
    response = client.post("/register/", {"email": "nope", "password": "x", "full_name": "N"})
    assert response.status_code == 400
    assert "email: Enter a valid email address." in response.content.decode()


def test_register_logs_in(client: Client, api: StandInGateway) -> None:
    response = client.post("/register/", {"email": "new@example.com", "password": "New-pass-2026"})
    assert response.status_code == 302
    assert "new@example.com" in client.get("/profile/").content.decode()


def test_wrong_password_is_said_in_words(client: Client, api: StandInGateway) -> None:
    response = client.post("/login/", {"email": "alice@example.com", "password": "wrong"})
    assert response.status_code == 400
    assert "Email or password is incorrect." in response.content.decode()


def test_pages_of_an_account_need_a_login(client: Client, api: StandInGateway) -> None:
    response = client.get("/orders/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/orders/")


def test_an_expired_access_token_is_refreshed_transparently(client: Client, api: StandInGateway) -> None:
    log_in(client)
    api.expire_access_tokens()  # the gateway now refuses the token it issued
    response = client.get("/profile/")
    assert response.status_code == 200
    assert "alice@example.com" in response.content.decode()
    assert api.refreshes == 1


def test_a_token_near_its_expiry_is_refreshed_before_the_call(client: Client, api: StandInGateway) -> None:
    log_in(client)
    key = f"auth:{client.session['auth']}"
    tokens = cache.get(key)
    tokens["expires_at"] = time.time() - 1
    cache.set(key, tokens)
    assert client.get("/profile/").status_code == 200
    assert api.refreshes == 1
    assert ("GET", "/api/users/me/") in api.calls


def test_racing_requests_rotate_the_refresh_token_once(client: Client, api: StandInGateway) -> None:
    """Two requests that both saw the old access token: the second uses the pair the
    first stored instead of presenting the spent refresh token (which would revoke the login)."""
    log_in(client)
    request = client.get("/").wsgi_request
    stale = Gateway(request).tokens()
    assert stale is not None
    first = Gateway(request)._refresh(stale["access"])
    second = Gateway(request)._refresh(stale["access"])
    assert first["access"] == second["access"]
    assert api.refreshes == 1
    assert client.get("/profile/").status_code == 200


def test_a_revoked_login_leads_to_the_login_page(client: Client, api: StandInGateway) -> None:
    log_in(client)
    api.expire_access_tokens()
    api.refresh.clear()
    response = client.get("/orders/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_cart_adds_changes_and_removes_lines(client: Client, api: StandInGateway) -> None:
    client.post("/cart/add/", {"product_id": 1, "quantity": 2})
    client.post("/cart/add/", {"product_id": 1})
    assert client.session["cart"] == {"1": 3}
    client.post("/cart/update/", {"product_id": 1, "quantity": 1})
    assert "12.50 EUR" in client.get("/cart/").content.decode()
    client.post("/cart/update/", {"product_id": 1, "remove": "1"})
    assert client.session["cart"] == {}


def test_a_double_click_on_checkout_places_one_order(client: Client, api: StandInGateway) -> None:
    log_in(client)
    client.post("/cart/add/", {"product_id": 1, "quantity": 1})
    key = client.get("/cart/").context["checkout_key"]
    first = client.post("/checkout/", {"idempotency_key": key})
    second = client.post("/checkout/", {"idempotency_key": key})
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == "/orders/1/"
    assert len(api.orders) == 1
    assert client.session["cart"] == {}


def test_an_out_of_stock_checkout_says_so(client: Client, api: StandInGateway) -> None:
    log_in(client)
    client.post("/cart/add/", {"product_id": 1, "quantity": 1})
    api.products[1]["stock"] = 0  # sold out between the cart and the checkout
    response = client.post("/checkout/", {"idempotency_key": "k1"}, follow=True)
    html = response.content.decode()
    assert "Not enough stock for one of the items." in html
    assert "req-insufficient_stock" in html  # the request id, quoted for support
    assert api.orders == {}


@pytest.mark.parametrize(
    ("status", "reason", "polls", "words"),
    [
        ("PENDING", None, True, "Waiting for the next step"),
        ("CONFIRMED", None, False, "CONFIRMED"),
        ("CANCELLED", "insufficient_funds", False, "Your wallet balance is too low"),
    ],
)
def test_the_order_page_polls_until_the_order_is_terminal(
    client: Client, api: StandInGateway, status: str, reason: str | None, polls: bool, words: str
) -> None:
    log_in(client)
    api.orders[7] = api.order(7, status, reason)
    html = client.get("/orders/7/", headers={"HX-Request": "true"}).content.decode()
    assert ("hx-trigger" in html) is polls
    assert words in html
    assert "<html" not in html


def test_the_console_is_for_staff_only(client: Client, api: StandInGateway) -> None:
    assert client.get("/console/").status_code == 302
    log_in(client)
    forbidden = client.get("/console/")
    assert forbidden.status_code == 403
    assert "/console/" not in client.get("/").content.decode()
    client.post("/logout/")
    log_in(client, "staff@example.com", "Staff-pass-2026")
    assert client.get("/console/").status_code == 200
    assert 'href="/console/"' in client.get("/").content.decode()


def test_health(client: Client, api: StandInGateway) -> None:
    assert client.get("/health/live").status_code == 200
