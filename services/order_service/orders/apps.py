from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI description of the bearer token scheme.
        from comptoir import metrics

        from . import schema  # noqa: F401
        from .selectors import saga_backlog

        # Read at scrape time: feeds the "sagas stuck" alert.
        metrics.register_saga_backlog(saga_backlog)
