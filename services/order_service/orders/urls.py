"""The routes of order_service: `urlpatterns` (public and internal), `ops_routes` (see README.md)."""

from django.urls import URLPattern, URLResolver, path

from . import apis

urlpatterns = [
    path("api/orders/", apis.OrderListCreateApi.as_view(), name="list"),
    path("api/orders/<int:order_id>/", apis.OrderDetailApi.as_view(), name="detail"),
]

ops_routes: list[URLPattern | URLResolver] = [path("sagas/", apis.SagasOpsApi.as_view(), name="sagas")]
