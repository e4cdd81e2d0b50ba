from django.apps import AppConfig


class ComptoirConfig(AppConfig):
    name = "comptoir"
    label = "comptoir"
    verbose_name = "Comptoir chassis"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        # Not `_schema` (drf-spectacular, a fifth of a relay's start-up): it is imported,
        # and registers its OpenAPI extensions, with DEFAULT_SCHEMA_CLASS when a schema is built.
        from . import _metrics, _tracing

        _tracing.configure_tracing(str(getattr(settings, "COMPTOIR", {}).get("SERVICE_NAME", "comptoir")))
        _metrics.install()
