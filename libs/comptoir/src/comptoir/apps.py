from django.apps import AppConfig


class ComptoirConfig(AppConfig):
    name = "comptoir"
    label = "comptoir"
    verbose_name = "Comptoir chassis"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import _metrics, _schema  # noqa: F401 - _schema registers the OpenAPI auth extension

        _metrics.install()
