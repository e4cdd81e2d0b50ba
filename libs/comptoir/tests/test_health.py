"""Readiness reflects the real dependencies: Kafka stopped → 503 naming it."""

from __future__ import annotations

import time

import pytest
from conftest import devstack
from django.test import Client


def test_live_answers_without_touching_dependencies(client: Client) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "comptoir_chassis"}


@pytest.mark.django_db
def test_ready_is_200_with_everything_up_and_503_naming_kafka_when_it_stops(client: Client) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "kafka": "ok"}

    devstack("stop", "kafka")
    try:
        response = client.get("/health/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["failed"] == ["kafka"]
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"] == "ok"
        assert body["checks"]["kafka"].startswith("failed:")
    finally:
        devstack("start", "kafka")

    deadline = time.monotonic() + 60
    while True:
        response = client.get("/health/ready")
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.json()
