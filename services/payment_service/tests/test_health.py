import pytest
from django.test import Client


def test_live(client: Client) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "payment_service"}


@pytest.mark.django_db
def test_ready_checks_database_and_redis_not_kafka(client: Client) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    # Requests write events to the outbox: a broker outage must not take the web process out.
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}
