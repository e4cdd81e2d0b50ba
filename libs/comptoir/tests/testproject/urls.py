from django.urls import path
from testapp.views import BoomView, InternalView, MeView, NoteView, StaffView

from comptoir import health_urlpatterns
from comptoir.events import ops_urlpatterns

urlpatterns = [
    *health_urlpatterns(),
    *ops_urlpatterns(),
    path("notes/<int:pk>/", NoteView.as_view()),
    path("notes/", NoteView.as_view()),
    path("boom/", BoomView.as_view()),
    path("me/", MeView.as_view()),
    path("staff/", StaffView.as_view()),
    path("internal/ping/", InternalView.as_view()),
]

handler404 = "comptoir._errors.json_404"
handler500 = "comptoir._errors.json_500"
