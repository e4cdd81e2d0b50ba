from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .cart import cart_count
from .gateway import Gateway


def storefront(request: HttpRequest) -> dict[str, Any]:
    """What every page shows: who is logged in (staff or not), the cart's size."""
    user = Gateway(request).user() if hasattr(request, "session") else None
    return {
        "me": user,
        "is_staff": bool(user and user.get("is_staff")),
        "cart_count": cart_count(request) if hasattr(request, "session") else 0,
        "docs_url": f"{settings.PUBLIC_GATEWAY_URL}/docs",
        "poll_ms": settings.LIVE_POLL_MS,
    }
