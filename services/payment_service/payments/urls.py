from django.urls import path

from . import views

app_name = "payments"

urlpatterns = [
    path("", views.PaymentListView.as_view(), name="payment-list"),
    path("wallet/", views.WalletView.as_view(), name="wallet"),
    path("wallets/<int:user_id>/credit/", views.WalletCreditView.as_view(), name="wallet-credit"),
    path("<int:payment_id>/", views.PaymentDetailView.as_view(), name="payment-detail"),
]
