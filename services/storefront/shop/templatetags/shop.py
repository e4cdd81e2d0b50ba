from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def when(value: str | None) -> str:
    """An ISO timestamp from the API as `2026-12-05 03:04:05 UTC`."""
    parsed: datetime | None = parse_datetime(value) if value else None
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else (value or "")


@register.filter
def status_class(value: str) -> str:
    return {"CONFIRMED": "ok", "CANCELLED": "bad", "PENDING": "wait"}.get(value, "wait")
