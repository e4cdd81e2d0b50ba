from django.apps import AppConfig


class ComptoirConfig(AppConfig):
    name = "comptoir"
    label = "comptoir"
    verbose_name = "Comptoir chassis"
    default_auto_field = "django.db.models.BigAutoField"
