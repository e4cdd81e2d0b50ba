"""The services order_service calls, each through the chassis's pooled client
(`comptoir.service_client`: URL, timeout and retries from settings; one
process-wide service token for every upstream)."""

from __future__ import annotations

from comptoir import ServiceClient, service_client


def product_service_client() -> ServiceClient:
    return service_client("product_service")


def user_service_client() -> ServiceClient:
    return service_client("user_service")


def payment_service_client() -> ServiceClient:
    return service_client("payment_service")
