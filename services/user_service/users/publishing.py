"""The events user_service publishes, shaped as `contracts/events/` says.

Each function writes to the outbox inside the caller's transaction (the one
that changes the account), so the event exists exactly when the change
commits. Ids travel as strings.
"""

from __future__ import annotations

from comptoir.events import Envelope, publish_event

from .models import User

# user.registered v1 allows a shorter display name than an account's full name.
USER_REGISTERED_DISPLAY_NAME_MAX = 150


def publish_user_registered(*, user: User) -> Envelope:
    """A new account: email_service sends the welcome mail on it."""
    return publish_event(
        "user.registered",
        aggregate_id=user.pk,
        payload={
            "user_id": str(user.pk),
            "email": user.email,
            "display_name": user.full_name[:USER_REGISTERED_DISPLAY_NAME_MAX],
        },
    )


def publish_user_deactivated(*, user_id: int) -> Envelope:
    """An account was closed: order_service forgets the customer it kept for it."""
    return publish_event("user.deactivated", aggregate_id=user_id, payload={"user_id": str(user_id)})
