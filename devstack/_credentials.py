"""Who is who on the local platform: the checkout's credentials, by role.

Every value is drawn at random once per checkout (`_secrets`) and handed to the
process that needs it through its environment:

- Kafka (SASL/SCRAM-SHA-512): one principal per service, named after it, which
  the broker's ACLs (derived from `contracts/events/catalog.json`) confine to
  its own topics and groups; `comptoir_admin`, a super user, creates topics,
  sets ACLs and is the principal of test runs (`devstack run`), which produce
  to topics of their own; `comptoir_controller` authenticates the broker to its
  KRaft controller listener (SASL/PLAIN), so nothing else may talk to it.
- Django: one SECRET_KEY per service; the service-client secret each service
  trades for service tokens (user_service registers all of them).
- user_service's JWT signing keys: a folder under `.devstack/`.
"""

from __future__ import annotations

from ._config import STATE_DIR
from ._secrets import secret

KAFKA_ADMIN = "comptoir_admin"
KAFKA_CONTROLLER = "comptoir_controller"
KAFKA_MECHANISM = "SCRAM-SHA-512"
# Services that hold a client secret (the gateway included: user_service knows it).
SERVICE_CLIENTS = ("product_service", "order_service", "payment_service", "email_service", "api_gateway")
JWT_KEYS_DIR = STATE_DIR / "jwt-keys"
# The settings a test run gets: a name no service uses.
TEST_RUN = "tests"


def kafka_password(principal: str) -> str:
    return secret(f"kafka.{principal}")


def kafka_client_env(principal: str) -> dict[str, str]:
    """What the chassis reads to authenticate as `principal` (comptoir._kafka_security)."""
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": KAFKA_MECHANISM,
        "KAFKA_SASL_USERNAME": principal,
        "KAFKA_SASL_PASSWORD": kafka_password(principal),
    }


def kafka_admin_config() -> dict[str, str]:
    """librdkafka properties of the admin principal (the devstack's own clients)."""
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": KAFKA_MECHANISM,
        "sasl.username": KAFKA_ADMIN,
        "sasl.password": kafka_password(KAFKA_ADMIN),
    }


def django_secret_key(name: str) -> str:
    return secret(f"django-secret-key.{name}")


def client_secret(service: str) -> str:
    return secret(f"service-client.{service}")


def service_secrets_env(service: str) -> dict[str, str]:
    """A Django service's own secrets: SECRET_KEY, client secret, Kafka principal."""
    env = {
        "DJANGO_SECRET_KEY": django_secret_key(service),
        "SERVICE_CLIENT_SECRET": client_secret(service),
        **kafka_client_env(service),
    }
    if service == "user_service":
        # It registers every client with its secret (seed_demo) and signs the tokens.
        for client in SERVICE_CLIENTS:
            env[f"SERVICE_CLIENT_SECRET_{client.upper()}"] = client_secret(client)
        env["JWT_PRIVATE_KEYS_DIR"] = str(JWT_KEYS_DIR)
    return env


def test_run_env() -> dict[str, str]:
    """A test run's settings: secrets of its own, and the admin Kafka principal."""
    return {
        "DJANGO_SECRET_KEY": django_secret_key(TEST_RUN),
        "SERVICE_CLIENT_SECRET": client_secret(TEST_RUN),
        "JWT_PRIVATE_KEYS_DIR": str(STATE_DIR / "jwt-keys-tests"),
        **kafka_client_env(KAFKA_ADMIN),
    }
