from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from tests.conftest import Api
from users.models import ServiceClient, User

pytestmark = pytest.mark.django_db

DEMO = [
    (1, "staff@comptoir.dev", "Comptoir-staff-2026", True),
    (2, "alice@comptoir.dev", "Alice-demo-2026", False),
    (3, "bob@comptoir.dev", "Bob-demo-2026", False),
]
CLIENTS = ["api_gateway", "email_service", "order_service", "payment_service", "product_service"]


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_creates_the_demo_users_with_fixed_ids(api: Api) -> None:
    output = seed()

    assert output.splitlines()[:3] == [
        "user 1 staff@comptoir.dev (staff)",
        "user 2 alice@comptoir.dev",
        "user 3 bob@comptoir.dev",
    ]

    users = list(User.objects.order_by("pk").values_list("pk", "email", "is_staff", "is_active"))
    assert users == [(pk, email, staff, True) for pk, email, _, staff in DEMO]
    for pk, email, password, _ in DEMO:
        assert User.objects.get(pk=pk).check_password(password)
        assert api.login(email, password)["token_type"] == "Bearer"


@pytest.fixture(autouse=True)
def client_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """One secret per client in the environment, as the devstack and deployments give them."""
    secrets = {name: f"{name}-secret-from-the-environment-0123456789" for name in CLIENTS}
    for name, secret in secrets.items():
        monkeypatch.setenv(f"SERVICE_CLIENT_SECRET_{name.upper()}", secret)
    return secrets


def test_seed_creates_one_client_per_service_with_the_secrets_of_the_environment(
    api: Api, client_secrets: dict[str, str]
) -> None:
    seed()

    clients = {client.name: client for client in ServiceClient.objects.all()}
    assert sorted(clients) == CLIENTS
    assert all(client.is_active for client in clients.values())
    for name in CLIENTS:
        assert check_password(client_secrets[name], clients[name].secret_hash)
        assert not check_password(f"{name}-local-secret", clients[name].secret_hash)
    response = api.post(
        "/internal/users/auth/service-token/",
        {"client_id": "payment_service", "client_secret": client_secrets["payment_service"]},
    )
    assert response.status_code == 200


def test_seed_refuses_a_missing_client_secret_and_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICE_CLIENT_SECRET_PAYMENT_SERVICE")

    with pytest.raises(CommandError, match=r"^SERVICE_CLIENT_SECRET_PAYMENT_SERVICE is not set"):
        seed()

    assert ServiceClient.objects.count() == 0
    assert User.objects.count() == 0


def test_seed_uses_the_development_secrets_only_with_debug(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.DEBUG = True
    monkeypatch.delenv("SERVICE_CLIENT_SECRET_EMAIL_SERVICE")

    seed()

    client = ServiceClient.objects.get(name="email_service")
    assert check_password("email_service-local-secret", client.secret_hash)


def test_seed_moves_the_id_sequence_past_the_demo_users(api: Api) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('users_user', 'id'), 1, false)")

    seed()

    response = api.post("/api/users/register/", {"email": "new@example.com", "password": "A-new-password-1"})
    assert response.status_code == 201
    assert response.json()["id"] == 4


def test_seed_is_idempotent_and_repairs_what_changed(make_user: Any) -> None:
    seed()
    User.objects.filter(pk=2).update(full_name="Changed", is_active=False)
    alice = User.objects.get(pk=2)
    alice.set_password("Something-else-99")
    alice.save()
    ServiceClient.objects.filter(name="order_service").update(is_active=False)
    hashes = dict(ServiceClient.objects.values_list("name", "secret_hash"))

    seed()

    assert User.objects.count() == 3
    alice = User.objects.get(pk=2)
    assert (alice.full_name, alice.is_active) == ("Alice Martin", True)
    assert alice.check_password("Alice-demo-2026")
    assert ServiceClient.objects.count() == 5
    assert ServiceClient.objects.get(name="order_service").is_active
    # Unchanged secrets are not re-hashed on every start.
    assert dict(ServiceClient.objects.values_list("name", "secret_hash")) == hashes
