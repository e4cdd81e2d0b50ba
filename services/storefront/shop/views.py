"""The storefront's pages: catalogue, product, account, cart, checkout, orders, wallet.

Every page is rendered on the server from the gateway's answers; htmx swaps the
parts that change (the catalogue's results, the cart's lines, the order's live
status) without a reload. An error from the platform is shown in words, with its
request id.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from . import cart as carts
from .gateway import ApiError, Gateway

PAGE_SIZE = 12
TERMINAL = {"CONFIRMED", "CANCELLED"}
SORTS = {
    "name": "Name",
    "price": "Price: low to high",
    "-price": "Price: high to low",
    "-created_at": "Newest",
}
CANCEL_REASONS = {
    "insufficient_stock": "Some items are out of stock: nothing was charged.",
    "price_changed": "A price changed just before your order was reserved: nothing was charged. "
    "Check the new price and order again.",
    "insufficient_funds": "Your wallet balance is too low for this order: nothing was charged.",
    "payment_failed": "The payment did not go through: nothing was charged.",
    "user_inactive": "This account is closed or unknown.",
    "system_error": "A step failed for a technical reason; any charge was refunded.",
}
STEPS = {
    "verify_user": "Account checked",
    "reserve_stock": "Stock reserved",
    "charge_payment": "Wallet charged",
    "confirm_order": "Order confirmed",
    "refund_payment": "Payment refunded",
    "release_stock": "Stock released",
    "cancel_order": "Order cancelled",
}
STEP_STATUS = {"succeeded": "done", "failed": "failed", "compensated": "undone"}
# What a customer reads for the platform's error codes (the message comes with it otherwise).
ERROR_WORDS = {
    "insufficient_stock": "Not enough stock for one of the items.",
    "idempotency_key_reused": (
        "This checkout was already used for another cart; review your cart and try again."
    ),
    "throttled": "Too many requests: wait a moment and try again.",
    "invalid_credentials": "Email or password is incorrect.",
}
ORDER_TRACE_TTL_S = 7 * 24 * 3600


# ---------------------------------------------------------------- helpers


def _int(value: str | None, default: int, low: int = 1, high: int = 10_000) -> int:
    try:
        return max(low, min(high, int(value or default)))
    except ValueError:
        return default


def _error(request: HttpRequest, error: ApiError) -> None:
    messages.error(request, ERROR_WORDS.get(error.code, error.message), extra_tags=error.trace_id or "")


def _login_required(request: HttpRequest) -> HttpResponse | None:
    if Gateway(request).user() is None:
        return redirect(f"{reverse('login')}?next={request.get_full_path()}")
    return None


def _partial(request: HttpRequest) -> bool:
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-Boosted")


def order_trace(order_id: int | str) -> str | None:
    """The trace id of the request that placed this order here (the console links to it)."""
    found = cache.get(f"order-trace:{order_id}")
    return str(found) if found else None


# ---------------------------------------------------------------- health


@require_GET
def health_live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "service": "storefront"})


@require_GET
def health_ready(request: HttpRequest) -> JsonResponse:
    """Ready when its cache (sessions) answers and the gateway is reachable."""
    checks: dict[str, str] = {}
    try:
        cache.set("ready-probe", "1", timeout=5)
        checks["cache"] = "ok"
    except Exception:  # noqa: BLE001 - any failure of the cache is "not ready"
        checks["cache"] = "down"
    try:
        Gateway(request).call("GET", "/health/live", auth=False)
        checks["gateway"] = "ok"
    except ApiError:
        checks["gateway"] = "down"
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


# ---------------------------------------------------------------- catalogue


@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    gateway = Gateway(request)
    search = request.GET.get("search", "").strip()[:100]
    category = request.GET.get("category", "").strip()
    ordering = request.GET.get("ordering", "name")
    if ordering not in SORTS:
        ordering = "name"
    page = _int(request.GET.get("page"), 1)
    params = {
        "search": search,
        "category": category,
        "ordering": ordering,
        "page": page,
        "page_size": PAGE_SIZE,
    }
    error = None
    try:
        listing = gateway.call("GET", "/api/products/", params=params, auth=False)
    except ApiError as failure:
        listing, error = {"count": 0, "results": []}, failure
    try:
        categories = gateway.call("GET", "/api/products/categories/", params={"page_size": 100}, auth=False)
    except ApiError:
        categories = {"results": []}
    pages = max(1, math.ceil(int(listing.get("count", 0)) / PAGE_SIZE))
    context = {
        "products": listing.get("results", []),
        "count": listing.get("count", 0),
        "categories": categories.get("results", []),
        "search": search,
        "category": category,
        "ordering": ordering,
        "sorts": SORTS,
        "page": page,
        "pages": pages,
        "error": error,
    }
    template = "shop/_results.html" if _partial(request) else "shop/catalogue.html"
    return render(request, template, context)


@require_GET
def product(request: HttpRequest, product_id: int) -> HttpResponse:
    item = Gateway(request).call("GET", f"/api/products/{product_id}/", auth=False)
    return render(
        request,
        "shop/product.html",
        {"product": item, "in_cart": carts.cart(request).get(str(product_id), 0)},
    )


# ---------------------------------------------------------------- account


def register(request: HttpRequest) -> HttpResponse:
    form: dict[str, Any] = {}
    error = None
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in ("email", "full_name")}
        password = request.POST.get("password", "")
        gateway = Gateway(request)
        try:
            gateway.call("POST", "/api/users/register/", json={**form, "password": password}, auth=False)
            gateway.login(form["email"], password)
        except ApiError as failure:
            error = failure
        else:
            messages.success(request, "Welcome! Your account is ready.")
            return redirect("catalogue")
    return render(request, "shop/register.html", {"form": form, "error": error}, status=400 if error else 200)


def login(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    error = None
    email = ""
    if request.method == "POST":
        email = request.POST.get("email", "").strip()
        try:
            user = Gateway(request).login(email, request.POST.get("password", ""))
        except ApiError as failure:
            error = failure
        else:
            messages.success(request, f"Logged in as {user['email']}.")
            return HttpResponseRedirect(next_url or reverse("catalogue"))
    status = 400 if error else 200
    return render(
        request, "shop/login.html", {"error": error, "email": email, "next": next_url}, status=status
    )


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    Gateway(request).logout()
    messages.success(request, "You are logged out.")
    return redirect("catalogue")


def profile(request: HttpRequest) -> HttpResponse:
    if (missing := _login_required(request)) is not None:
        return missing
    gateway = Gateway(request)
    if request.method == "POST":
        try:
            updated = gateway.call(
                "PATCH", "/api/users/me/", json={"full_name": request.POST.get("full_name", "").strip()}
            )
        except ApiError as failure:
            _error(request, failure)
        else:
            gateway.remember_profile(updated)
            messages.success(request, "Profile saved.")
        return redirect("profile")
    me = gateway.call("GET", "/api/users/me/")
    return render(request, "shop/profile.html", {"profile": me})


# ---------------------------------------------------------------- cart


def _cart_lines(request: HttpRequest) -> tuple[list[dict[str, Any]], list[str]]:
    gateway = Gateway(request)
    lines, problems = [], []
    for product_id, quantity in carts.cart(request).items():
        try:
            item = gateway.call("GET", f"/api/products/{product_id}/", auth=False)
        except ApiError as failure:
            if failure.status == 404:
                carts.set_quantity(request, int(product_id), 0)
                problems.append(f"Product {product_id} is no longer sold and was removed from your cart.")
                continue
            raise
        total = float(item["price"]) * quantity
        lines.append(
            {
                "product": item,
                "quantity": quantity,
                "total": f"{total:.2f}",
                "short": quantity > item["stock"],
            }
        )
    return lines, problems


def _cart_context(request: HttpRequest) -> dict[str, Any]:
    lines, problems = _cart_lines(request)
    total = sum(float(line["total"]) for line in lines)
    if lines and not request.session.get("checkout_key"):
        request.session["checkout_key"] = uuid.uuid4().hex
    return {
        "lines": lines,
        "total": f"{total:.2f}",
        "currency": lines[0]["product"]["currency"] if lines else "EUR",
        "problems": problems,
        "checkout_key": request.session.get("checkout_key", ""),
    }


@require_GET
def cart_page(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/cart.html", _cart_context(request))


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    product_id = _int(request.POST.get("product_id"), 0, 0, 2**31)
    quantity = _int(request.POST.get("quantity"), 1, 1, carts.MAX_QUANTITY)
    if product_id:
        item = Gateway(request).call("GET", f"/api/products/{product_id}/", auth=False)
        if item["stock"] > 0:
            carts.add(request, product_id, quantity)
            request.session.pop("checkout_key", None)
            messages.success(request, f"{item['name']} added to your cart.")
        else:
            messages.error(request, f"{item['name']} is out of stock: it was not added to your cart.")
    back = request.POST.get("back", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(back)
    return redirect("cart")


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    product_id = _int(request.POST.get("product_id"), 0, 0, 2**31)
    quantity = 0 if "remove" in request.POST else _int(request.POST.get("quantity"), 1, 0, carts.MAX_QUANTITY)
    carts.set_quantity(request, product_id, quantity)
    request.session.pop("checkout_key", None)
    if _partial(request):
        return render(request, "shop/_cart.html", _cart_context(request))
    return redirect("cart")


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    if (missing := _login_required(request)) is not None:
        return missing
    lines = carts.cart(request)
    key = request.POST.get("idempotency_key", "")[:64] or uuid.uuid4().hex
    if not lines:
        # The first click of a double click emptied the cart: show the order it placed.
        placed = cache.get(f"checkout:{key}")
        if placed:
            return redirect("order", order_id=placed)
        messages.error(request, "Your cart is empty.")
        return redirect("cart")
    gateway = Gateway(request)
    body = {"lines": [{"product_id": int(pid), "quantity": qty} for pid, qty in lines.items()]}
    try:
        order = gateway.call("POST", "/api/orders/", json=body, headers={"Idempotency-Key": key})
    except ApiError as failure:
        _error(request, failure)
        return redirect("cart")
    cache.set(f"checkout:{key}", order["id"], timeout=3600)
    if gateway.last_trace_id:
        cache.set(f"order-trace:{order['id']}", gateway.last_trace_id, timeout=ORDER_TRACE_TTL_S)
    carts.clear(request)
    messages.success(request, f"Order #{order['id']} placed.")
    return redirect("order", order_id=order["id"])


# ---------------------------------------------------------------- orders


def _order_context(order: dict[str, Any]) -> dict[str, Any]:
    reason = order.get("cancel_reason")
    timeline = [
        {
            "label": STEPS.get(entry["step"], entry["step"]),
            "state": STEP_STATUS.get(entry["status"], entry["status"]),
            "status": entry["status"],
            "at": entry["at"],
            "error": CANCEL_REASONS.get(entry.get("error") or "", entry.get("error") or ""),
        }
        for entry in order.get("timeline", [])
    ]
    return {
        "order": order,
        "terminal": order["status"] in TERMINAL,
        "reason": CANCEL_REASONS.get(reason or "", reason) if reason else None,
        "timeline": timeline,
        "trace_id": order_trace(order["id"]),
    }


@require_GET
def order_page(request: HttpRequest, order_id: int) -> HttpResponse:
    if (missing := _login_required(request)) is not None:
        return missing
    order = Gateway(request).call("GET", f"/api/orders/{order_id}/")
    template = "shop/_order_live.html" if _partial(request) else "shop/order.html"
    return render(request, template, _order_context(order))


@require_GET
def orders(request: HttpRequest) -> HttpResponse:
    if (missing := _login_required(request)) is not None:
        return missing
    page = _int(request.GET.get("page"), 1)
    listing = Gateway(request).call("GET", "/api/orders/", params={"page": page, "page_size": 20})
    context = {
        "orders": listing.get("results", []),
        "page": page,
        "pages": max(1, math.ceil(int(listing.get("count", 0)) / 20)),
        "reasons": CANCEL_REASONS,
    }
    return render(request, "shop/orders.html", context)


@require_GET
def wallet(request: HttpRequest) -> HttpResponse:
    if (missing := _login_required(request)) is not None:
        return missing
    gateway = Gateway(request)
    balance = gateway.call("GET", "/api/payments/wallet/")
    payments = gateway.call("GET", "/api/payments/", params={"page_size": 20})
    return render(request, "shop/wallet.html", {"wallet": balance, "payments": payments.get("results", [])})


# ---------------------------------------------------------------- errors


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    error = ApiError(status=404, code="not_found", message="There is no such page.")
    return render(request, "shop/error.html", {"error": error}, status=404)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    error = ApiError(status=403, code="permission_denied", message="This page is for staff only.")
    return render(request, "shop/error.html", {"error": error}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    error = ApiError(status=500, code="internal_error", message="Something went wrong on our side.")
    return render(request, "shop/error.html", {"error": error}, status=500)
