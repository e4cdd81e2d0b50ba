from django.urls import include, path

from shop import views

urlpatterns = [
    path("health/live", views.health_live),
    path("health/ready", views.health_ready),
    path("console/", include("console.urls")),
    path("", include("shop.urls")),
]

handler404 = "shop.views.not_found"
handler500 = "shop.views.server_error"
handler403 = "shop.views.forbidden"
