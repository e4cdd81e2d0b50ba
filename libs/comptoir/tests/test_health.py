"""Liveness and readiness of a web process."""

from __future__ import annotations

import pytest
from django.test import Client


def test_live_answers_without_touching_dependencies(client: Client) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "comptoir_chassis"}


@pytest.mark.django_db
def test_ready_checks_what_a_request_needs_not_kafka(client: Client) -> None:
    """Writes go to the outbox: the broker is the relay's dependency, not the web's
    (tests/events/test_probes.py stops Kafka and checks both)."""
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ok",
        "service": "comptoir_chassis",
        "checks": {"database": "ok", "redis": "ok"},
        "failed": [],
    }
