"""HTTP entry points: decode the request, call a service or selector, answer."""

from __future__ import annotations

import re
from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comptoir import ApplicationError, ErrorResponseSerializer, IsEndUser, IsStaff, Principal

from .errors import OrderErrorCode
from .models import Order
from .product_quotes import RequestedLine
from .selectors import order_get_for_user, order_list_for_user, saga_ops_overview
from .serializers import (
    OrderCreateInputSerializer,
    OrderDetailSerializer,
    OrderSerializer,
    SagaOpsSerializer,
)
from .services import MAX_IDEMPOTENCY_KEY_LENGTH, order_create

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Visible ASCII and spaces: what a client can put in a header without encoding.
_IDEMPOTENCY_KEY_RE = re.compile(rf"^[\x20-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}$")

_ERROR = OpenApiResponse(ErrorResponseSerializer)


def _caller_id(request: Request) -> int:
    principal = request.user
    if not isinstance(principal, Principal) or principal.user_id is None:
        raise NotAuthenticated()
    return principal.user_id


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY_RE.match(key):
        raise ApplicationError(
            OrderErrorCode.INVALID_IDEMPOTENCY_KEY,
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters.",
        )
    return key


class OrderListCreateApi(ListModelMixin, GenericAPIView[Order]):
    permission_classes = (IsEndUser,)
    serializer_class = OrderSerializer

    def get_queryset(self) -> QuerySet[Order]:
        return order_list_for_user(user_id=_caller_id(self.request))

    @extend_schema(
        operation_id="orders_list",
        summary="My orders, newest first",
        responses={200: OrderSerializer(many=True), 401: _ERROR, 403: _ERROR},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="orders_create",
        summary="Place an order",
        description=(
            "Accepted (202) PENDING: the order saga then verifies the user, reserves the stock and "
            "charges the wallet, and the order ends CONFIRMED or CANCELLED with a reason; follow it "
            "on `GET /api/orders/{id}/` (status, cancel_reason, timeline). In choreography mode an "
            "unknown or inactive user's order is answered already CANCELLED (`user_inactive`). "
            "Prices come from product_service; any price, total, status or owner in the body is "
            "ignored. Each product on one line only (a repeated product id is refused with "
            "`duplicate_product`). With an `Idempotency-Key`, a retry returns the order the first "
            "request placed (200; 202 for the first), and the same key with other lines is refused "
            "(409 `idempotency_key_reused`)."
        ),
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="Any unique string per intended order (a UUID); scoped to the caller.",
            )
        ],
        request=OrderCreateInputSerializer,
        responses={
            202: OpenApiResponse(OrderDetailSerializer, description="Placed; its saga is under way."),
            200: OpenApiResponse(OrderDetailSerializer, description="Replay of an earlier request."),
            400: _ERROR,
            401: _ERROR,
            403: _ERROR,
            404: OpenApiResponse(ErrorResponseSerializer, description="Unknown product."),
            409: _ERROR,
            502: _ERROR,
            503: _ERROR,
            504: _ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        user_id = _caller_id(request)
        idempotency_key = _idempotency_key(request)
        serializer = OrderCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        placed = order_create(
            user_id=user_id,
            lines=[
                RequestedLine(product_id=line["product_id"], quantity=line["quantity"])
                for line in serializer.validated_data["lines"]
            ],
            idempotency_key=idempotency_key,
        )
        # A new order is answered as its transaction wrote it; a replay is read back.
        order = placed.detail or order_get_for_user(user_id=user_id, order_id=placed.order.pk)
        headers = {"Location": f"/api/orders/{placed.order.pk}/"}
        if not placed.created:
            headers["Idempotent-Replayed"] = "true"
        return Response(
            # The serializer reads attributes: a PlacedOrderDetail has the same as an Order.
            OrderDetailSerializer(cast(Any, order)).data,
            status=status.HTTP_202_ACCEPTED if placed.created else status.HTTP_200_OK,
            headers=headers,
        )


class OrderDetailApi(APIView):
    permission_classes = (IsEndUser,)

    @extend_schema(
        operation_id="orders_retrieve",
        summary="One of my orders, with its lines, status history and saga timeline",
        responses={200: OrderDetailSerializer, 401: _ERROR, 403: _ERROR, 404: _ERROR},
    )
    def get(self, request: Request, order_id: int) -> Response:
        order = order_get_for_user(user_id=_caller_id(request), order_id=order_id)
        return Response(OrderDetailSerializer(order).data)


class SagasOpsApi(APIView):
    """Staff only, under the chassis' operations routes (`/api/ops/order_service/`)."""

    permission_classes = (IsStaff,)

    @extend_schema(
        operation_id="ops_sagas",
        summary="Orders pending longest, cancellations by reason, the last reconciliation (staff)",
        responses={200: SagaOpsSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(saga_ops_overview())
