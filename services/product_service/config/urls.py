from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from catalog import urls as catalog_urls
from comptoir import health_urlpatterns
from comptoir.events import ops_urlpatterns

urlpatterns = [
    *health_urlpatterns(),
    *ops_urlpatterns(extra=catalog_urls.ops_routes),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include(catalog_urls.urlpatterns)),
]

handler400 = "comptoir._errors.json_400"
handler403 = "comptoir._errors.json_403"
handler404 = "comptoir._errors.json_404"
handler500 = "comptoir._errors.json_500"
