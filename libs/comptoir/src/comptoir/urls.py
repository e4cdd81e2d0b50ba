"""A service's root URLconf, the same in every service: health, operations, admin,
the OpenAPI schema, then the app's own routes.

    # config/urls.py
    from comptoir.urls import handler400, handler403, handler404, handler500, service_urlpatterns
    from orders import urls as app_urls

    urlpatterns = service_urlpatterns(app_urls)

The app's `urls` module holds `urlpatterns` (its public and internal routes with their
full paths) and `ops_routes` (its own operations routes, under `/api/ops/<service>/`).
"""

from __future__ import annotations

from types import ModuleType

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView

from ._health import health_urlpatterns
from .events import ops_urlpatterns

# Django reads these from the root URLconf: errors in the standard JSON body.
handler400 = "comptoir._errors.json_400"
handler403 = "comptoir._errors.json_403"
handler404 = "comptoir._errors.json_404"
handler500 = "comptoir._errors.json_500"


def service_urlpatterns(app_urls: ModuleType) -> list[URLPattern | URLResolver]:
    return [
        *health_urlpatterns(),
        *ops_urlpatterns(extra=getattr(app_urls, "ops_routes", [])),
        path("admin/", admin.site.urls),
        path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
        path("", include(app_urls.urlpatterns)),
    ]


__all__ = ["handler400", "handler403", "handler404", "handler500", "service_urlpatterns"]
