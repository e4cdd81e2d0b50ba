"""The routes of product_service: `urlpatterns` (public and internal), `ops_routes` (see README.md)."""

from django.urls import URLPattern, URLResolver, path

from . import apis

urlpatterns = [
    path("api/products/", apis.ProductListApi.as_view(), name="product-list"),
    path("api/products/<int:pk>/", apis.ProductDetailApi.as_view(), name="product-detail"),
    path("api/products/<int:pk>/stock/", apis.ProductStockApi.as_view(), name="product-stock"),
    path("api/products/categories/", apis.CategoryListApi.as_view(), name="category-list"),
    path("api/products/categories/<int:pk>/", apis.CategoryDetailApi.as_view(), name="category-detail"),
    path("internal/stock/audit/products/", apis.StockBalanceAuditApi.as_view(), name="internal-stock-audit"),
    path(
        "internal/stock/audit/reservations/",
        apis.ReservationAuditApi.as_view(),
        name="internal-reservation-audit",
    ),
    path("internal/products/quote/", apis.QuoteApi.as_view(), name="internal-quote"),
    path(
        "internal/stock/reservations/",
        apis.ReservationCreateApi.as_view(),
        name="internal-reservation-create",
    ),
    path(
        "internal/stock/reservations/batch/",
        apis.ReservationBatchApi.as_view(),
        name="internal-reservation-batch",
    ),
    path(
        "internal/stock/reservations/<str:order_id>/",
        apis.ReservationDetailApi.as_view(),
        name="internal-reservation-detail",
    ),
    path(
        "internal/stock/reservations/<str:order_id>/release/",
        apis.ReservationReleaseApi.as_view(),
        name="internal-reservation-release",
    ),
    path(
        "internal/stock/reservations/<str:order_id>/commit/",
        apis.ReservationCommitApi.as_view(),
        name="internal-reservation-commit",
    ),
]

ops_routes: list[URLPattern | URLResolver] = []
