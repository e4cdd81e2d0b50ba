"""OpenAPI: how callers authenticate (the chassis does not describe its
JWTAuthentication to drf-spectacular yet, so this service does)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "comptoir._auth.JWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An RS256 access token issued by user_service.",
        }
