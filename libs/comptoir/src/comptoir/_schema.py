"""OpenAPI (drf-spectacular) description of the chassis' bearer authentication.

Imported by the chassis app's `ready()`, so every service's schema names the
scheme instead of warning about an unknown authentication class.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "comptoir._auth.JWTAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "RS256 access token from user_service, or a service token for /internal/.",
        }
