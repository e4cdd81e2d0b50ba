"""The HTTP clients of the services order_service calls: one pooled
`ServiceClient` per upstream per process, all sharing one cached service token.

Keyed on the settings they are built from, so a changed setting (tests) takes
effect; the chassis' process-wide token provider would keep the first
SERVICE_TOKEN_URL it saw, hence providers keyed here too.
"""

from __future__ import annotations

import functools

from django.conf import settings

from comptoir import ServiceClient, ServiceTokenProvider


@functools.lru_cache(maxsize=4)
def _token_provider(token_url: str, client_id: str, client_secret: str) -> ServiceTokenProvider:
    # One token for every upstream: each one fetched costs user_service a secret check.
    return ServiceTokenProvider(token_url, client_id, client_secret)


@functools.lru_cache(maxsize=16)
def _client(
    name: str, base_url: str, token_url: str, client_id: str, client_secret: str, timeout_s: float
) -> ServiceClient:
    return ServiceClient(
        base_url,
        timeout_s=timeout_s,
        token_provider=_token_provider(token_url, client_id, client_secret),
        name=name,
    )


def _for(name: str, base_url: str, timeout_s: float) -> ServiceClient:
    return _client(
        name,
        base_url,
        settings.SERVICE_TOKEN_URL,
        settings.SERVICE_CLIENT_ID,
        settings.SERVICE_CLIENT_SECRET,
        float(timeout_s),
    )


def product_service_client() -> ServiceClient:
    return _for("product_service", settings.PRODUCT_SERVICE_URL, settings.PRODUCT_SERVICE_TIMEOUT_S)


def user_service_client() -> ServiceClient:
    return _for("user_service", settings.USER_SERVICE_URL, settings.USER_SERVICE_TIMEOUT_S)


def payment_service_client() -> ServiceClient:
    return _for("payment_service", settings.PAYMENT_SERVICE_URL, settings.PAYMENT_SERVICE_TIMEOUT_S)
