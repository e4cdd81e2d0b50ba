from django.urls import path

from .apis import EmailDetailApi, EmailListApi, EmailRequestApi

urlpatterns = [
    path("internal/emails/", EmailRequestApi.as_view(), name="internal-emails"),
    path("api/emails/", EmailListApi.as_view(), name="emails-list"),
    path("api/emails/<int:email_id>/", EmailDetailApi.as_view(), name="emails-detail"),
]
