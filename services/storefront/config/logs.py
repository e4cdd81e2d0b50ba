"""Every line the storefront writes is one ECS JSON object naming the service
(`service.name`), like every other process of the platform: Django's and gunicorn's."""

from __future__ import annotations

import logging
from typing import Any

SERVICE = "storefront"


class ServiceName(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.setdefault("service.name", SERVICE)
        return True


def logging_config(level: str, *, gunicorn: bool = False) -> dict[str, Any]:
    loggers: dict[str, Any] = {"django.server": {"level": "WARNING"}}
    if gunicorn:
        for name in ("gunicorn.error", "gunicorn.access"):
            loggers[name] = {"handlers": ["stdout"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"service": {"()": "config.logs.ServiceName"}},
        "formatters": {"ecs": {"()": "ecs_logging.StdlibFormatter", "exclude_fields": ["process"]}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "ecs",
                "filters": ["service"],
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": loggers,
    }
