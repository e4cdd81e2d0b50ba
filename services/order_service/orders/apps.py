from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from comptoir import metrics

        from . import tasks  # noqa: F401 - registers the saga's Celery tasks, enqueued by name
        from .saga_metrics import SagaBacklogCollector
        from .selectors import saga_backlog

        # Read at scrape time: feeds the "sagas stuck" alert.
        metrics.register_scrape_collector(SagaBacklogCollector(saga_backlog))
