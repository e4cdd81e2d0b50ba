"""A stricter, per-client-address limit for the doors brute force knocks on."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class AuthRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle reading its rate when asked, not when DRF was imported.

    DRF binds `THROTTLE_RATES` at class creation, so a rate changed later
    (settings reloaded, a test overriding it) would never be seen.
    """

    def get_rate(self) -> str | None:
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.")
        rate = rates[self.scope]
        return None if rate is None else str(rate)
