"""Routes for the other services only (service token); the gateway never forwards here."""

from django.urls import path

from . import views

app_name = "payments_internal"

urlpatterns = [
    path("charge/", views.ChargeView.as_view(), name="charge"),
    path("refund/", views.RefundView.as_view(), name="refund"),
    path("audit/payments/", views.PaymentAuditView.as_view(), name="audit-payments"),
    path("audit/wallets/", views.WalletAuditView.as_view(), name="audit-wallets"),
]
