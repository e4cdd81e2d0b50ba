"""OpenAPI description of the chassis' bearer-JWT authentication.

The chassis does not register one yet; without it drf-spectacular warns on
every view. Loaded from `MailerConfig.ready`.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class ComptoirJWTScheme(OpenApiAuthenticationExtension):
    target_class = "comptoir._auth.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "RS256 access token from user_service (end users) or a service token.",
        }
