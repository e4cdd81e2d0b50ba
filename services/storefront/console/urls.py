from django.urls import path

from . import views

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
    path("panels/health/", views.health_panel, name="health"),
    path("panels/events/", views.events_panel, name="events"),
    path("dlq/", views.dlq, name="dlq"),
    path("dlq/<str:service>/purge/", views.dlq_purge, name="purge"),
    path("dlq/<str:service>/<str:letter_id>/", views.dlq_letter, name="letter"),
    path("dlq/<str:service>/<str:letter_id>/replay/", views.dlq_replay, name="replay"),
    path("sagas/", views.sagas, name="sagas"),
    path("mails/", views.mails, name="mails"),
    path("traces/", views.trace_lookup, name="trace-lookup"),
    path("traces/<str:trace_id>/", views.trace, name="trace"),
    path("metrics/<str:name>.json", views.metric, name="metric"),
]
