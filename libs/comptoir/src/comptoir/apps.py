from django.apps import AppConfig


class ComptoirConfig(AppConfig):
    name = "comptoir"
    label = "comptoir"
    verbose_name = "Comptoir chassis"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from . import _metrics, _schema, _tracing  # noqa: F401 - _schema registers the OpenAPI auth extension

        _tracing.configure_tracing(str(getattr(settings, "COMPTOIR", {}).get("SERVICE_NAME", "comptoir")))
        _metrics.install()
