"""Service-token scopes: the claim, the table, the permission classes."""

from __future__ import annotations

from typing import Any

import pytest

from comptoir import requires_scope
from comptoir._scopes import SERVICE_CLIENT_SCOPES, client_scopes, token_scopes


def test_the_scope_claim_is_space_separated() -> None:
    assert token_scopes({"scope": "payments:charge  users:read"}) == {"payments:charge", "users:read"}
    assert token_scopes({}) == frozenset()
    assert token_scopes({"scope": ["payments:charge"]}) == frozenset()  # not the claim's form


def test_only_the_order_saga_may_move_money_or_stock() -> None:
    holders = {
        scope: sorted(client for client, scopes in SERVICE_CLIENT_SCOPES.items() if scope in scopes)
        for scope in ("payments:charge", "payments:refund", "stock:reserve", "stock:release", "users:read")
    }
    assert holders == {
        "payments:charge": ["order_service"],
        "payments:refund": ["order_service"],
        "stock:reserve": ["order_service"],
        "stock:release": ["order_service"],
        "users:read": ["email_service", "order_service"],
    }


def test_client_scopes_reads_the_table_or_the_setting(settings: Any) -> None:
    assert client_scopes("email_service") == ("users:read",)
    assert client_scopes("unknown_client") == ()
    settings.SERVICE_CLIENT_SCOPES = {"email_service": ["users:read", "emails:send", "users:read"]}
    assert client_scopes("email_service") == ("emails:send", "users:read")


def test_one_permission_class_per_scope() -> None:
    assert requires_scope("payments:charge") is requires_scope("payments:charge")
    assert requires_scope("payments:charge").scope == "payments:charge"
    assert requires_scope("payments:refund") is not requires_scope("payments:charge")
    with pytest.raises(ValueError, match="one non-empty word"):
        requires_scope("payments:charge payments:refund")
