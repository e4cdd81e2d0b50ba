from django.urls import path

from .apis import OrderDetailApi, OrderListCreateApi

app_name = "orders"

urlpatterns = [
    path("", OrderListCreateApi.as_view(), name="list"),
    path("<int:order_id>/", OrderDetailApi.as_view(), name="detail"),
]
