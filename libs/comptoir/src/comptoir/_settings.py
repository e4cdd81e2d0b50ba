"""Where the infrastructure and the other services are: environment variables,
else the local devstack's ports. The settings themselves are `comptoir.settings`."""

from __future__ import annotations

import environ

from .ports import DJANGO_SERVICES, local_url

env = environ.Env()


def _local_port(name: str, default: int) -> int:
    return int(env.str(name, default=str(default)))


def infrastructure_urls(service: str) -> dict[str, str]:
    """Where PostgreSQL, Redis and Kafka are: env vars, else the devstack's ports."""
    pg_port = _local_port("COMPTOIR_PG_PORT", 5433)
    redis_port = _local_port("COMPTOIR_REDIS_PORT", 6380)
    kafka_port = _local_port("COMPTOIR_KAFKA_PORT", 9092)
    return {
        "DATABASE_URL": env.str(
            "DATABASE_URL", default=f"postgres://{service}:{service}@127.0.0.1:{pg_port}/{service}"
        ),
        "REDIS_URL": env.str("REDIS_URL", default=f"redis://127.0.0.1:{redis_port}/0"),
        "KAFKA_BOOTSTRAP_SERVERS": env.str("KAFKA_BOOTSTRAP_SERVERS", default=f"127.0.0.1:{kafka_port}"),
    }


def service_urls() -> dict[str, str]:
    """`<SERVICE>_URL` for every service: env vars, else the devstack's ports."""
    return {
        f"{name.upper()}_URL": env.str(f"{name.upper()}_URL", default=local_url(name))
        for name in DJANGO_SERVICES
    }
