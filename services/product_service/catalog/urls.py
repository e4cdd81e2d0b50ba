from django.urls import path

from . import apis

public_urlpatterns = [
    path("", apis.ProductListApi.as_view(), name="product-list"),
    path("<int:pk>/", apis.ProductDetailApi.as_view(), name="product-detail"),
    path("<int:pk>/stock/", apis.ProductStockApi.as_view(), name="product-stock"),
    path("categories/", apis.CategoryListApi.as_view(), name="category-list"),
    path("categories/<int:pk>/", apis.CategoryDetailApi.as_view(), name="category-detail"),
]

internal_urlpatterns = [
    path("stock/audit/products/", apis.StockBalanceAuditApi.as_view(), name="internal-stock-audit"),
    path(
        "stock/audit/reservations/",
        apis.ReservationAuditApi.as_view(),
        name="internal-reservation-audit",
    ),
    path("products/quote/", apis.QuoteApi.as_view(), name="internal-quote"),
    path("stock/reservations/", apis.ReservationCreateApi.as_view(), name="internal-reservation-create"),
    path(
        "stock/reservations/<str:order_id>/",
        apis.ReservationDetailApi.as_view(),
        name="internal-reservation-detail",
    ),
    path(
        "stock/reservations/<str:order_id>/release/",
        apis.ReservationReleaseApi.as_view(),
        name="internal-reservation-release",
    ),
    path(
        "stock/reservations/<str:order_id>/commit/",
        apis.ReservationCommitApi.as_view(),
        name="internal-reservation-commit",
    ),
]
