"""Closing an account publishes `user.deactivated` through the outbox, in the
deactivation's transaction: order_service forgets the customer it kept."""

from __future__ import annotations

from typing import Any

import redis

from comptoir.events import Envelope, OutboxMessage, validate_payload
from users.models import User
from users.services import user_deactivate


def deactivations() -> list[tuple[str, dict[str, Any]]]:
    """user.deactivated events in the outbox (key, payload), each checked against its contract."""
    published = []
    for row in OutboxMessage.objects.order_by("id"):
        envelope = Envelope.from_json(row.envelope)
        if envelope.event_type == "user.deactivated":
            validate_payload(envelope.event_type, envelope.schema_version, envelope.payload)
            assert (row.key, envelope.producer) == (envelope.aggregate_id, "user_service")
            published.append((row.key, envelope.payload))
    return published


def test_closing_an_account_publishes_user_deactivated_once(user: User, revocation_list: redis.Redis) -> None:
    assert user_deactivate(user_id=user.pk) is True
    assert user_deactivate(user_id=user.pk) is False  # nothing left to close, nothing said

    assert deactivations() == [(str(user.pk), {"user_id": str(user.pk)})]


def test_an_account_left_active_publishes_nothing(user: User) -> None:
    assert user_deactivate(user_id=user.pk + 1000) is False

    assert deactivations() == []
