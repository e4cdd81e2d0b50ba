import pytest
from django.test import Client


def test_live(client: Client) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "email_service"}


@pytest.mark.django_db
def test_ready_checks_database_redis_and_kafka(client: Client) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "kafka": "ok"}
