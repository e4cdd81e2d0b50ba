"""The gateway declares the platform's error body for its own statuses; the services'
documents declare it through the chassis (`comptoir._schema`). The merged document keeps
one `ErrorResponse` only while they are equal (a service that differs is renamed), so
they are held equal here: the gateway's image does not carry the chassis to import it."""

from __future__ import annotations

import sys

import pytest
import yaml
from check_openapi import DJANGO_SERVICES, OPENAPI_DIR, REPO


@pytest.mark.parametrize("service", DJANGO_SERVICES)
def test_the_gateway_declares_the_error_body_every_service_documents(service: str) -> None:
    sys.path.insert(0, str(REPO / "services" / "api_gateway"))
    try:
        from gateway.docs import ERROR_COMPONENT, ERROR_SCHEMA
    finally:
        sys.path.pop(0)
    document = yaml.safe_load((OPENAPI_DIR / f"{service}.yaml").read_text())
    assert document["components"]["schemas"][ERROR_COMPONENT] == ERROR_SCHEMA
