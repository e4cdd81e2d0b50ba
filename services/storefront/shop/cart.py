"""The cart: {product id: quantity} in the session (kept across reloads and logins)."""

from __future__ import annotations

from django.http import HttpRequest

MAX_QUANTITY = 99
MAX_LINES = 50  # order_service accepts 50 lines at most


def cart(request: HttpRequest) -> dict[str, int]:
    raw = request.session.get("cart") or {}
    return {str(k): int(v) for k, v in raw.items() if int(v) > 0}


def cart_count(request: HttpRequest) -> int:
    return sum(cart(request).values())


def set_quantity(request: HttpRequest, product_id: int, quantity: int) -> None:
    lines = cart(request)
    if quantity <= 0:
        lines.pop(str(product_id), None)
    else:
        lines[str(product_id)] = min(quantity, MAX_QUANTITY)
    request.session["cart"] = dict(list(lines.items())[:MAX_LINES])


def add(request: HttpRequest, product_id: int, quantity: int = 1) -> None:
    set_quantity(request, product_id, cart(request).get(str(product_id), 0) + quantity)


def clear(request: HttpRequest) -> None:
    request.session["cart"] = {}
    request.session.pop("checkout_key", None)
