from django.apps import AppConfig


class EventsappConfig(AppConfig):
    name = "eventsapp"
    default_auto_field = "django.db.models.BigAutoField"
