"""How a process authenticates to Kafka: one principal per service.

Every Kafka client of the chassis (the relay's producer, the consumers, the
admin client of `create_topics` and of the health check, the DLQ tools) is
configured by `kafka_client_config()`, which adds the security settings read
from the environment:

- `KAFKA_SECURITY_PROTOCOL`: PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL or SSL;
- SASL: `KAFKA_SASL_MECHANISM` (default SCRAM-SHA-512), `KAFKA_SASL_USERNAME`,
  `KAFKA_SASL_PASSWORD`;
- TLS (SASL_SSL, or SSL for mutual TLS): `KAFKA_SSL_CA_LOCATION`,
  `KAFKA_SSL_CERTIFICATE_LOCATION`, `KAFKA_SSL_KEY_LOCATION`,
  `KAFKA_SSL_KEY_PASSWORD`.

The broker's ACLs (see `comptoir._kafka_acls`) are granted to the principal
`User:<KAFKA_SASL_USERNAME>` (or the certificate's subject), so what a process
may write and read follows from the credentials it is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
DEFAULT_MECHANISM = "SCRAM-SHA-512"

# Environment variable -> librdkafka property, for the TLS files.
_SSL_FILES = {
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
    "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
}


def kafka_security_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The librdkafka security properties the environment asks for (empty: PLAINTEXT).

    Raises ImproperlyConfigured, naming the variable, when a protocol lacks what it needs.
    """
    source = os.environ if environ is None else environ
    protocol = source.get("KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
    if protocol not in PROTOCOLS:
        raise ImproperlyConfigured(
            f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(PROTOCOLS)}"
        )
    if protocol == "PLAINTEXT":
        return {}
    config = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        mechanism = source.get("KAFKA_SASL_MECHANISM", "").strip().upper() or DEFAULT_MECHANISM
        if mechanism not in MECHANISMS:
            raise ImproperlyConfigured(
                f"KAFKA_SASL_MECHANISM={mechanism!r} is not one of {', '.join(MECHANISMS)}"
            )
        for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
            if not source.get(name):
                raise ImproperlyConfigured(f"{name} is required with KAFKA_SECURITY_PROTOCOL={protocol}")
        config.update(
            {
                "sasl.mechanism": mechanism,
                "sasl.username": source["KAFKA_SASL_USERNAME"],
                "sasl.password": source["KAFKA_SASL_PASSWORD"],
            }
        )
    if protocol == "SSL":
        for name in ("KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION"):
            if not source.get(name):
                raise ImproperlyConfigured(
                    f"{name} is required with KAFKA_SECURITY_PROTOCOL=SSL (mutual TLS)"
                )
    for name, key in _SSL_FILES.items():
        if source.get(name) and protocol in ("SASL_SSL", "SSL"):
            config[key] = source[name]
    return config


def kafka_security() -> dict[str, str]:
    """This process's security properties: `settings.KAFKA_SECURITY`, else the environment."""
    from django.conf import settings

    if settings.configured:
        configured = getattr(settings, "KAFKA_SECURITY", None)
        if configured is not None:
            return dict(configured)
    return kafka_security_from_env()


def kafka_client_config(bootstrap_servers: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A librdkafka configuration: where the brokers are, who this process is, then `overrides`."""
    if bootstrap_servers is None:
        from django.conf import settings

        bootstrap_servers = str(settings.KAFKA_BOOTSTRAP_SERVERS)
    # librdkafka's own messages go through Python logging (ECS lines), not to stderr.
    return {
        "bootstrap.servers": bootstrap_servers,
        "logger": logging.getLogger("comptoir.kafka"),
        **kafka_security(),
        **overrides,
    }


def kafka_principal() -> str | None:
    """`User:<name>` for a SASL client, None otherwise (TLS principals come from the certificate)."""
    username = kafka_security().get("sasl.username")
    return f"User:{username}" if username else None
