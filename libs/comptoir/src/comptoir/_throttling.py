"""Per-caller request limits of the services (DRF throttles).

End users are limited per user id, anonymous callers per address (DRF's own
throttles, counters in the Redis cache). Service tokens are not: a call from
another service of the platform is caused by a request that was already counted
(at the gateway and here), so limiting it again would turn one busy customer into
`503 service token refused (429)` for everybody, and would cost two cache round
trips on every internal call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle

from ._auth import Principal

if TYPE_CHECKING:
    from rest_framework.views import APIView


class EndUserRateThrottle(UserRateThrottle):
    """DRF's per-user limit (`user` rate), for end users only."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        user = request.user
        if isinstance(user, Principal) and user.is_service:
            return True
        return super().allow_request(request, view)
