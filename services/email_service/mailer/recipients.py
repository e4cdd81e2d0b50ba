"""Who a mail goes to: the customer's address and name, from user_service's
internal lookup (`GET /internal/users/{id}/`, with this service's token)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings

from comptoir import ErrorCode, ServiceClient, UpstreamError


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email: str
    full_name: str
    is_active: bool


@functools.cache
def _user_service(base_url: str) -> ServiceClient:
    # One pooled client per process (per URL: tests point the setting elsewhere).
    return ServiceClient(base_url, timeout_s=3.0, name="user_service")


def recipient_get(*, user_id: str) -> Recipient | None:
    """The user's contact details; None when user_service knows no such user.

    Anything else than 200 or 404 (user_service down, refusing our token)
    raises `UpstreamError`, for the caller to try again later.
    """
    if not user_id.isdecimal():
        return None
    response = _user_service(settings.USER_SERVICE_URL).get(f"/internal/users/{user_id}/")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise UpstreamError(
            ErrorCode.UNAVAILABLE,
            f"user_service answered {response.status_code} for user {user_id}",
            status_code=503,
        )
    body = response.json()
    return Recipient(
        user_id=str(body["id"]),
        email=str(body["email"]),
        full_name=str(body.get("full_name") or ""),
        is_active=bool(body.get("is_active", True)),
    )
