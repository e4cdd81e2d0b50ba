"""HTTP entry points: decode and check the request, call a service or selector, answer.

`/api/payments/...` serves end users (each sees only their own payments and
wallet) and staff; `/internal/payments/...` serves the other services of the
platform and needs a service token.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comptoir import (
    AuditPageQuerySerializer,
    AuditWindowQuerySerializer,
    BatchResponseSerializer,
    ErrorResponseSerializer,
    IsEndUser,
    IsStaff,
    Principal,
    audit_next_after,
    audit_page_query,
    batch_response,
    requires_scope,
)

from . import selectors, services
from .models import Payment
from .serializers import (
    ChargeBatchRequestSerializer,
    ChargeRequestSerializer,
    CreditRequestSerializer,
    PaymentAuditPageSerializer,
    PaymentResultSerializer,
    PaymentSerializer,
    RefundRequestSerializer,
    WalletAuditPageSerializer,
    WalletSerializer,
)


def _caller_id(request: Request) -> int:
    principal = request.user
    if not isinstance(principal, Principal) or principal.user_id is None:
        raise NotAuthenticated()
    return principal.user_id


def _errors(**responses: str) -> dict[int, OpenApiResponse]:
    return {
        int(code): OpenApiResponse(ErrorResponseSerializer, description=text)
        for code, text in responses.items()
    }


_AUTH_ERRORS = {"401": "No or invalid token.", "403": "Not allowed for this caller."}


class PaymentPagination(PageNumberPagination):
    """The platform's page size, which a client may lower or raise up to 100 with `page_size`."""

    page_size_query_param = "page_size"
    max_page_size = 100


@extend_schema(tags=["payments"], summary="My payments, newest first")
class PaymentListApi(generics.ListAPIView[Payment]):
    permission_classes = (IsEndUser,)
    serializer_class = PaymentSerializer
    pagination_class = PaymentPagination

    def get_queryset(self) -> QuerySet[Payment]:
        return selectors.payment_list(user_id=_caller_id(self.request))


class PaymentDetailApi(APIView):
    permission_classes = (IsEndUser,)

    @extend_schema(
        tags=["payments"],
        summary="One of my payments",
        responses={200: PaymentSerializer, **_errors(**_AUTH_ERRORS, **{"404": "Not one of my payments."})},
    )
    def get(self, request: Request, payment_id: int) -> Response:
        payment = selectors.payment_get(user_id=_caller_id(request), payment_id=payment_id)
        return Response(PaymentSerializer(payment).data)


class WalletApi(APIView):
    permission_classes = (IsEndUser,)

    @extend_schema(
        tags=["payments"],
        summary="My wallet: balance and latest ledger entries",
        description="A user who never had a wallet gets an empty one (balance 0.00), opened on first read.",
        responses={200: WalletSerializer, **_errors(**_AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        wallet = services.wallet_get_or_create(user_id=_caller_id(request))
        statement = selectors.wallet_statement(wallet=wallet, limit=settings.PAYMENT_WALLET_RECENT_ENTRIES)
        return Response(WalletSerializer(statement).data)


class WalletCreditApi(APIView):
    permission_classes = (IsStaff,)

    @extend_schema(
        tags=["payments"],
        summary="Top a user's wallet up (staff)",
        request=CreditRequestSerializer,
        responses={
            200: WalletSerializer,
            **_errors(**_AUTH_ERRORS, **{"400": "Invalid amount."}),
        },
    )
    def post(self, request: Request, user_id: int) -> Response:
        body = CreditRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wallet = services.wallet_credit(user_id=user_id, amount=body.validated_data["amount"])
        statement = selectors.wallet_statement(wallet=wallet, limit=settings.PAYMENT_WALLET_RECENT_ENTRIES)
        return Response(WalletSerializer(statement).data)


class ChargeApi(APIView):
    permission_classes = (requires_scope("payments:charge"),)

    @extend_schema(
        tags=["internal"],
        summary="Charge an order to the user's wallet (idempotent per order_id)",
        description=(
            "A repeat with the same body answers the same payment (201) without a second debit. "
            "A refused charge leaves the balance untouched and is recorded as a FAILED payment; "
            "a later attempt for the same order with enough funds captures it."
        ),
        request=ChargeRequestSerializer,
        responses={
            201: PaymentResultSerializer,
            **_errors(
                **_AUTH_ERRORS,
                **{
                    "400": "Invalid body (validation_error).",
                    "409": (
                        "insufficient_funds, currency_mismatch, idempotency_conflict, or order_compensated "
                        "(the order was refunded before this charge: it can never capture)."
                    ),
                },
            ),
        },
    )
    def post(self, request: Request) -> Response:
        return _charge(request.data)


def _charge(data: Any) -> Response:
    body = ChargeRequestSerializer(data=data)
    body.is_valid(raise_exception=True)
    payment = services.payment_charge(**body.validated_data)
    return Response(PaymentResultSerializer(payment).data, status=status.HTTP_201_CREATED)


class ChargeBatchApi(APIView):
    permission_classes = (requires_scope("payments:charge"),)

    @extend_schema(
        tags=["internal"],
        summary="Charge several orders in one request",
        description=(
            "Each item is a charge request, validated and run on its own (its own transaction); its "
            "result is the status and body `POST /internal/payments/charge/` would have answered for "
            "it alone (201, or 400/409 with the error body). One item's refusal leaves the others "
            "as they are."
        ),
        request=ChargeBatchRequestSerializer,
        responses={
            200: BatchResponseSerializer,
            **_errors(**_AUTH_ERRORS, **{"400": "Not a batch: no items, too many, or not objects."}),
        },
    )
    def post(self, request: Request) -> Response:
        return batch_response(request, self, _charge)


class RefundApi(APIView):
    permission_classes = (requires_scope("payments:refund"),)

    @extend_schema(
        tags=["internal"],
        summary="Refund an order's payment (idempotent per order_id)",
        request=RefundRequestSerializer,
        responses={
            200: PaymentResultSerializer,
            **_errors(
                **_AUTH_ERRORS,
                **{
                    "400": "Invalid body (validation_error).",
                    "404": (
                        "payment_not_found: nothing was captured for this order; a tombstone now refuses "
                        "any later charge of it (order_compensated)."
                    ),
                },
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = RefundRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        payment = services.payment_refund(order_id=body.validated_data["order_id"])
        return Response(PaymentResultSerializer(payment).data)


# --- internal: the reconciliation auditor (read only) ---------------------------


class PaymentAuditApi(APIView):
    permission_classes = (requires_scope("payments:audit"),)

    @extend_schema(
        tags=["internal"],
        summary="Payments by id (keyset pages) with what the ledger moved, for the reconciliation auditor",
        parameters=[AuditWindowQuerySerializer],
        responses={200: PaymentAuditPageSerializer, **_errors(**_AUTH_ERRORS, **{"400": "Invalid query."})},
    )
    def get(self, request: Request) -> Response:
        query = audit_page_query(AuditWindowQuerySerializer, request)
        rows = selectors.payment_audit_page(
            after=query["after"],
            limit=query["limit"],
            since=query.get("since"),
            until=query.get("until"),
            order_ids=query.get("order_id", ()),
        )
        return Response(
            PaymentAuditPageSerializer(
                {"results": rows, "next_after": audit_next_after(rows, query["limit"])}
            ).data
        )


class WalletAuditApi(APIView):
    permission_classes = (requires_scope("payments:audit"),)

    @extend_schema(
        tags=["internal"],
        summary="Wallets by id (keyset pages) with the sum of their ledger, for the reconciliation auditor",
        parameters=[AuditPageQuerySerializer],
        responses={200: WalletAuditPageSerializer, **_errors(**_AUTH_ERRORS, **{"400": "Invalid query."})},
    )
    def get(self, request: Request) -> Response:
        query = audit_page_query(AuditPageQuerySerializer, request)
        rows = selectors.wallet_audit_page(after=query["after"], limit=query["limit"])
        body = {"results": rows, "next_after": audit_next_after(rows, query["limit"])}
        return Response(WalletAuditPageSerializer(body).data)
