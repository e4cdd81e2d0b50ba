"""order_service settings: the chassis defaults plus what this service owns."""

from pathlib import Path

import environ

from comptoir import service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

globals().update(service_settings("order_service", BASE_DIR))

INSTALLED_APPS += ["orders"]  # type: ignore[name-defined]  # noqa: F821

# Placing an order waits for product_service's quote: fail fast rather than
# hold the caller (and a gunicorn worker) when the catalogue is slow.
PRODUCT_SERVICE_TIMEOUT_S = env.float("PRODUCT_SERVICE_TIMEOUT_S", default=3.0)

SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {  # type: ignore[name-defined]  # noqa: F821
    "OrderStatusEnum": "orders.models.OrderStatus",
    "CancelReasonEnum": "orders.models.CancelReason",
}
