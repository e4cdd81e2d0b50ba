"""Scopes of service tokens: what one service may ask of another.

A service token (client credentials, issued by user_service) carries the
client's scopes in its `scope` claim, space-separated as in OAuth 2.0, e.g.
`"payments:charge payments:refund stock:reserve users:read"`. Which client
gets which scopes is configured in one place, `SERVICE_CLIENT_SCOPES` below
(user_service, which issues the tokens, reads it through `client_scopes`; a
deployment may replace the whole table with a `SERVICE_CLIENT_SCOPES` setting
there). Every internal route names the one scope it needs:

    class ChargeView(APIView):
        permission_classes = [requires_scope("payments:charge")]

An end user's token, or another service's token without that scope, gets a 403
whose body names the scope required and the scopes the token carries; no token
(or an invalid one) stays a 401.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ._auth import Principal
from ._errors import ApplicationError, ErrorCode

if TYPE_CHECKING:
    from rest_framework.views import APIView

SCOPE_CLAIM = "scope"

# client id (the service's name) -> the scopes its tokens carry. A client that is
# not listed gets a token without scopes: it opens no internal route.
SERVICE_CLIENT_SCOPES: dict[str, tuple[str, ...]] = {
    "order_service": (
        "users:read",
        "products:quote",
        "stock:reserve",
        "stock:read",
        "stock:commit",
        "stock:release",
        "payments:charge",
        "payments:refund",
        # The reconciliation auditor: read-only pages of payments, wallets, stock.
        "payments:audit",
        "stock:audit",
    ),
    "email_service": ("users:read",),
    "product_service": (),
    "payment_service": (),
    "user_service": (),
    "api_gateway": (),
}


def client_scopes(client: str) -> tuple[str, ...]:
    """The scopes of `client`'s service tokens (a `SERVICE_CLIENT_SCOPES` setting replaces the table)."""
    from django.conf import settings

    table = getattr(settings, "SERVICE_CLIENT_SCOPES", None) or SERVICE_CLIENT_SCOPES
    return tuple(sorted(set(table.get(client, ()))))


def token_scopes(claims: dict[str, Any]) -> frozenset[str]:
    """The scopes a verified token's claims grant (space-separated `scope` claim)."""
    raw = claims.get(SCOPE_CLAIM, "")
    if not isinstance(raw, str):
        return frozenset()
    return frozenset(raw.split())


class ServiceScopeRequired(BasePermission):
    """A service token carrying `scope`; subclass it or use `requires_scope(...)`."""

    scope: str = ""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not isinstance(user, Principal):
            return False  # DRF answers 401: no credentials
        if not user.is_service:
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED,
                "Internal endpoint: service credentials required.",
                details={"required_scope": self.scope},
                status_code=403,
            )
        granted = token_scopes(user.claims)
        if self.scope not in granted:
            raise ApplicationError(
                ErrorCode.INSUFFICIENT_SCOPE,
                f"This route requires the scope {self.scope!r}, which the token of {user.service} "
                "does not carry.",
                details={
                    "required_scope": self.scope,
                    "client": user.service,
                    "granted_scopes": sorted(granted),
                },
                status_code=403,
            )
        return True


_classes: dict[str, type[ServiceScopeRequired]] = {}


def requires_scope(scope: str) -> type[ServiceScopeRequired]:
    """The permission class of the internal routes that need `scope` (one class per scope)."""
    if not scope or " " in scope:
        raise ValueError(f"a scope is one non-empty word, not {scope!r}")
    if scope not in _classes:
        name = "Requires_" + "".join(part.capitalize() for part in scope.replace(":", "_").split("_"))
        _classes[scope] = type(name, (ServiceScopeRequired,), {"scope": scope, "__module__": __name__})
    return _classes[scope]
