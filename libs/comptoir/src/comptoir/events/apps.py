"""The Django app that holds the outbox and inbox tables of every service."""

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "comptoir.events"
    label = "comptoir_events"
    verbose_name = "Comptoir events (outbox, inbox)"
    default_auto_field = "django.db.models.BigAutoField"
