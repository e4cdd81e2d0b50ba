from django.urls import path

from . import apis

app_name = "payments"

urlpatterns = [
    path("", apis.PaymentListApi.as_view(), name="payment-list"),
    path("wallet/", apis.WalletApi.as_view(), name="wallet"),
    path("wallets/<int:user_id>/credit/", apis.WalletCreditApi.as_view(), name="wallet-credit"),
    path("<int:payment_id>/", apis.PaymentDetailApi.as_view(), name="payment-detail"),
]
