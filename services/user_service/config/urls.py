from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from comptoir import health_urlpatterns
from comptoir.events import ops_urlpatterns
from users import urls as users_urls

urlpatterns = [
    *health_urlpatterns(),
    *ops_urlpatterns(extra=users_urls.ops_routes),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include(users_urls.urlpatterns)),
]

handler400 = "comptoir._errors.json_400"
handler403 = "comptoir._errors.json_403"
handler404 = "comptoir._errors.json_404"
handler500 = "comptoir._errors.json_500"
