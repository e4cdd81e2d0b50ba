"""The local port of every process that serves HTTP: one table for the devstack
(which starts them there, `COMPTOIR_<NAME>_PORT` moves one), the chassis (where a
service looks for another unless `<SERVICE>_URL` says otherwise) and the gateway
(its `routes.yaml` upstreams; a test keeps that file in step with this table).

The order is the devstack's: a process's metrics port follows its rank here.
Plain data, no imports: the devstack reads it without Django.
"""

from __future__ import annotations

HOST = "127.0.0.1"

SERVICE_PORTS: dict[str, int] = {
    "api_gateway": 8000,
    "user_service": 8001,
    "product_service": 8002,
    "order_service": 8003,
    "payment_service": 8004,
    "email_service": 8005,
    # The web frontend (storefront and operations console): a client of the gateway.
    "storefront": 8010,
}

# The Django services: each serves the API of its domain, behind the gateway.
DJANGO_SERVICES: tuple[str, ...] = (
    "user_service",
    "product_service",
    "order_service",
    "payment_service",
    "email_service",
)


def local_url(service: str) -> str:
    """Where `service` listens on this machine by default."""
    return f"http://{HOST}:{SERVICE_PORTS[service]}"
