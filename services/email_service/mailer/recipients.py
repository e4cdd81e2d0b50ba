"""Who a mail goes to: the customer's address and name, from user_service's
internal lookup (`GET /internal/users/{id}/`, with this service's token)."""

from __future__ import annotations

from dataclasses import dataclass

from comptoir import ErrorCode, UpstreamError, service_client


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email: str
    full_name: str
    is_active: bool


def recipient_get(*, user_id: str) -> Recipient | None:
    """The user's contact details; None when user_service knows no such user.

    Anything else than 200 or 404 (user_service down, refusing our token)
    raises `UpstreamError`, for the caller to try again later.
    """
    if not user_id.isdecimal():
        return None
    response = service_client("user_service").get(f"/internal/users/{user_id}/")
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
