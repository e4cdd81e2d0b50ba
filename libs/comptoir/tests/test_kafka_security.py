"""Kafka client security from the environment, and the start-up refusal of development secrets."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from comptoir._kafka_security import kafka_security_from_env
from comptoir._production import require_production_secrets, secret_problem

STRONG = "x" * 43


def test_plaintext_by_default_adds_nothing() -> None:
    assert kafka_security_from_env({}) == {}
    assert kafka_security_from_env({"KAFKA_SECURITY_PROTOCOL": "plaintext"}) == {}


def test_sasl_scram_reads_the_principal_and_its_password() -> None:
    config = kafka_security_from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_USERNAME": "order_service",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    assert config == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "order_service",
        "sasl.password": "s3cret",
    }


def test_sasl_ssl_adds_the_ca_and_mutual_tls_needs_the_client_files() -> None:
    config = kafka_security_from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "scram-sha-256",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": "p",
            "KAFKA_SSL_CA_LOCATION": "/etc/kafka/ca.pem",
        }
    )
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"
    assert config["ssl.ca.location"] == "/etc/kafka/ca.pem"
    assert kafka_security_from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CERTIFICATE_LOCATION": "/tls/client.pem",
            "KAFKA_SSL_KEY_LOCATION": "/tls/client.key",
        }
    ) == {
        "security.protocol": "SSL",
        "ssl.certificate.location": "/tls/client.pem",
        "ssl.key.location": "/tls/client.key",
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": "p"},
            "KAFKA_SASL_USERNAME is required",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_PASSWORD is required",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SSL_CERTIFICATE_LOCATION is required"),
        ({"KAFKA_SECURITY_PROTOCOL": "KERBEROS"}, "KAFKA_SECURITY_PROTOCOL='KERBEROS' is not one of"),
    ],
)
def test_an_incomplete_configuration_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=f"^{message}"):
        kafka_security_from_env(environ)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "DJANGO_SECRET_KEY is not set"),
        ("local-only-insecure-order_service-key", "DJANGO_SECRET_KEY is a development value"),
        ("django-insecure-" + STRONG, "DJANGO_SECRET_KEY is a development value"),
        ("change-me-order-secret-key-0123456789", "DJANGO_SECRET_KEY is a development value"),
        ("short", "DJANGO_SECRET_KEY is shorter than 32 characters"),
        (STRONG, None),
    ],
)
def test_secret_problems(value: str | None, problem: str | None) -> None:
    found = secret_problem("DJANGO_SECRET_KEY", value)
    assert (found or "").startswith(problem or "")
    assert (found is None) == (problem is None)


def production_environ(**overrides: str) -> dict[str, str]:
    environ = {
        "DJANGO_SECRET_KEY": STRONG,
        "SERVICE_CLIENT_SECRET": STRONG + "y",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "order_service",
        "KAFKA_SASL_PASSWORD": STRONG + "z",
    }
    environ.update(overrides)
    return {name: value for name, value in environ.items() if value}


SECRETS = ("DJANGO_SECRET_KEY", "SERVICE_CLIENT_SECRET")


def test_production_with_every_secret_starts() -> None:
    require_production_secrets(debug=False, environ=production_environ(), secrets=SECRETS)
    require_production_secrets(
        debug=False,
        environ=production_environ(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SASL_PASSWORD=""),
        secrets=SECRETS,
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is not set"),
        (
            {"SERVICE_CLIENT_SECRET": "order_service-local-secret"},
            "SERVICE_CLIENT_SECRET is a development value",
        ),
        ({"KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD is not set"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
            "KAFKA_SASL_PASSWORD is not set (KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
        ),
    ],
)
def test_production_refuses_a_missing_or_development_secret_naming_it(
    overrides: dict[str, str], named: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        require_production_secrets(debug=False, environ=production_environ(**overrides), secrets=SECRETS)
    assert str(refused.value).startswith("refusing to start with DEBUG=False: ")
    assert named in str(refused.value)


def test_debug_runs_on_the_development_defaults() -> None:
    require_production_secrets(debug=True, environ={}, secrets=SECRETS)
