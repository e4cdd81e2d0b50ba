from django.urls import path
from testapp.views import BoomView, NoteView

from comptoir import health_urlpatterns

urlpatterns = [
    *health_urlpatterns(),
    path("notes/<int:pk>/", NoteView.as_view()),
    path("notes/", NoteView.as_view()),
    path("boom/", BoomView.as_view()),
]

handler404 = "comptoir._errors.json_404"
handler500 = "comptoir._errors.json_500"
