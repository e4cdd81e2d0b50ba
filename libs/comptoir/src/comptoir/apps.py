from django.apps import AppConfig


class ComptoirConfig(AppConfig):
    name = "comptoir"
    label = "comptoir"
    verbose_name = "Comptoir chassis"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import _schema  # noqa: F401 - registers the OpenAPI auth extension
