"""The routes of payment_service: `urlpatterns` (public and internal), `ops_routes` (see README.md)."""

from django.urls import URLPattern, URLResolver, path

from . import apis

urlpatterns = [
    path("api/payments/", apis.PaymentListApi.as_view(), name="payment-list"),
    path("api/payments/wallet/", apis.WalletApi.as_view(), name="wallet"),
    path("api/payments/wallets/<int:user_id>/credit/", apis.WalletCreditApi.as_view(), name="wallet-credit"),
    path("api/payments/<int:payment_id>/", apis.PaymentDetailApi.as_view(), name="payment-detail"),
    path("internal/payments/charge/", apis.ChargeApi.as_view(), name="charge"),
    path("internal/payments/charge/batch/", apis.ChargeBatchApi.as_view(), name="charge-batch"),
    path("internal/payments/refund/", apis.RefundApi.as_view(), name="refund"),
    path("internal/payments/audit/payments/", apis.PaymentAuditApi.as_view(), name="audit-payments"),
    path("internal/payments/audit/wallets/", apis.WalletAuditApi.as_view(), name="audit-wallets"),
]

ops_routes: list[URLPattern | URLResolver] = []
