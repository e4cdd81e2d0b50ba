from django.urls import path

from . import views

public_urlpatterns = [
    path("", views.ProductListView.as_view(), name="product-list"),
    path("<int:pk>/", views.ProductDetailView.as_view(), name="product-detail"),
    path("<int:pk>/stock/", views.ProductStockView.as_view(), name="product-stock"),
    path("categories/", views.CategoryListView.as_view(), name="category-list"),
    path("categories/<int:pk>/", views.CategoryDetailView.as_view(), name="category-detail"),
]

internal_urlpatterns = [
    path("stock/audit/products/", views.StockBalanceAuditView.as_view(), name="internal-stock-audit"),
    path(
        "stock/audit/reservations/",
        views.ReservationAuditView.as_view(),
        name="internal-reservation-audit",
    ),
    path("products/quote/", views.QuoteView.as_view(), name="internal-quote"),
    path("stock/reservations/", views.ReservationCreateView.as_view(), name="internal-reservation-create"),
    path(
        "stock/reservations/<str:order_id>/",
        views.ReservationDetailView.as_view(),
        name="internal-reservation-detail",
    ),
    path(
        "stock/reservations/<str:order_id>/release/",
        views.ReservationReleaseView.as_view(),
        name="internal-reservation-release",
    ),
    path(
        "stock/reservations/<str:order_id>/commit/",
        views.ReservationCommitView.as_view(),
        name="internal-reservation-commit",
    ),
]
