"""Routes for the other services only (service token); the gateway never forwards here."""

from django.urls import path

from . import apis

app_name = "payments_internal"

urlpatterns = [
    path("charge/", apis.ChargeApi.as_view(), name="charge"),
    path("refund/", apis.RefundApi.as_view(), name="refund"),
    path("audit/payments/", apis.PaymentAuditApi.as_view(), name="audit-payments"),
    path("audit/wallets/", apis.WalletAuditApi.as_view(), name="audit-wallets"),
]
