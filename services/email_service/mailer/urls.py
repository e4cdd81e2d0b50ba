"""The routes of email_service: `urlpatterns` (public and internal), `ops_routes` (see README.md)."""

from django.urls import URLPattern, URLResolver, path

from . import apis

urlpatterns = [
    path("internal/emails/", apis.EmailRequestApi.as_view(), name="internal-emails"),
    path("api/emails/", apis.EmailListApi.as_view(), name="emails-list"),
    path("api/emails/<int:email_id>/", apis.EmailDetailApi.as_view(), name="emails-detail"),
]

ops_routes: list[URLPattern | URLResolver] = [path("mails/", apis.MailLogOpsApi.as_view(), name="mails")]
