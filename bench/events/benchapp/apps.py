from django.apps import AppConfig


class BenchappConfig(AppConfig):
    name = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"
