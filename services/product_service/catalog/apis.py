"""HTTP entry points: validate the request, call a selector or service, answer.

Public catalogue: anyone reads active products; staff also see inactive ones
and are the only ones who write. Internal stock operations: service tokens only.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS, AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comptoir import (
    ApplicationError,
    AuditPageQuerySerializer,
    AuditWindowQuerySerializer,
    BatchResponseSerializer,
    IsStaff,
    audit_next_after,
    audit_page_query,
    batch_response,
    requires_scope,
)

from . import selectors, services
from .errors import CatalogErrorCode
from .models import Category, Product
from .serializers import (
    CategoryInputSerializer,
    CategorySerializer,
    LinesInputSerializer,
    ProductInputSerializer,
    ProductListQuerySerializer,
    ProductSerializer,
    QuoteSerializer,
    ReservationAuditPageSerializer,
    ReservationBatchInputSerializer,
    ReservationInputSerializer,
    ReservationSerializer,
    StockBalancePageSerializer,
    StockInputSerializer,
    StockSerializer,
)


class CatalogPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.CATALOG_MAX_PAGE_SIZE


class PublicReadStaffWrite(APIView):
    """Reads are public; every other method needs a staff token."""

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method in SAFE_METHODS:
            return [AllowAny()]
        return [IsStaff()]

    def caller_is_staff(self) -> bool:
        return IsStaff().has_permission(self.request, self)


# --- categories --------------------------------------------------------------


class CategoryListApi(PublicReadStaffWrite, generics.ListAPIView[Category]):
    serializer_class = CategorySerializer
    pagination_class = CatalogPagination

    def get_queryset(self) -> QuerySet[Category]:
        return selectors.category_list()

    @extend_schema(request=CategoryInputSerializer, responses={201: CategorySerializer})
    def post(self, request: Request) -> Response:
        payload = CategoryInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        category = services.category_create(**payload.validated_data)
        return Response(CategorySerializer(category).data, status=status.HTTP_201_CREATED)


class CategoryDetailApi(PublicReadStaffWrite, generics.GenericAPIView[Category]):
    serializer_class = CategorySerializer
    queryset = Category.objects.none()

    def get(self, request: Request, pk: int) -> Response:
        return Response(CategorySerializer(selectors.category_get(category_id=pk)).data)

    @extend_schema(request=CategoryInputSerializer, responses={200: CategorySerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(request=CategoryInputSerializer, responses={200: CategorySerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.category_delete(category_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        selectors.category_get(category_id=pk)  # 404 before 400 for a missing category
        payload = CategoryInputSerializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        category = services.category_update(category_id=pk, changes=dict(payload.validated_data))
        return Response(CategorySerializer(category).data)


# --- products ----------------------------------------------------------------


def _product_filters(query: Any) -> selectors.ProductFilters:
    params = ProductListQuerySerializer(data=query)
    if not params.is_valid():
        raise ApplicationError(
            CatalogErrorCode.INVALID_FILTER, "Some query parameters are not valid.", details=params.errors
        )
    data = params.validated_data
    search = data.get("search", "").strip()
    return selectors.ProductFilters(
        category=data.get("category"),
        min_price=data.get("min_price"),
        max_price=data.get("max_price"),
        search=search or None,
        ordering=data["ordering"],
    )


class ProductListApi(PublicReadStaffWrite, generics.ListAPIView[Product]):
    serializer_class = ProductSerializer
    pagination_class = CatalogPagination

    def get_queryset(self) -> QuerySet[Product]:
        return selectors.product_list(
            filters=_product_filters(self.request.query_params), include_inactive=self.caller_is_staff()
        )

    @extend_schema(parameters=[ProductListQuerySerializer])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ProductInputSerializer, responses={201: ProductSerializer})
    def post(self, request: Request) -> Response:
        payload = ProductInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        product = services.product_create(**payload.validated_data)
        created = selectors.product_get(product_id=product.pk, include_inactive=True)
        return Response(ProductSerializer(created).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(PublicReadStaffWrite, generics.GenericAPIView[Product]):
    serializer_class = ProductSerializer
    queryset = Product.objects.none()

    def get(self, request: Request, pk: int) -> Response:
        product = selectors.product_get(product_id=pk, include_inactive=self.caller_is_staff())
        return Response(ProductSerializer(product).data)

    @extend_schema(request=ProductInputSerializer, responses={200: ProductSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(request=ProductInputSerializer, responses={200: ProductSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.product_delete(product_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        selectors.product_get(product_id=pk, include_inactive=True)  # 404 before 400
        payload = ProductInputSerializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        services.product_update(product_id=pk, changes=dict(payload.validated_data))
        product = selectors.product_get(product_id=pk, include_inactive=True)
        return Response(ProductSerializer(product).data)


class ProductStockApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=StockInputSerializer, responses={200: StockSerializer})
    def put(self, request: Request, pk: int) -> Response:
        payload = StockInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        stock = services.stock_set(product_id=pk, quantity=payload.validated_data["quantity"])
        return Response(StockSerializer(stock).data)


# --- internal ----------------------------------------------------------------


class QuoteApi(APIView):
    permission_classes = [requires_scope("products:quote")]

    @extend_schema(request=LinesInputSerializer, responses={200: QuoteSerializer})
    def post(self, request: Request) -> Response:
        payload = LinesInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        quote = selectors.quote_lines(lines=payload.requested_lines())
        return Response(QuoteSerializer(quote).data)


class ReservationCreateApi(APIView):
    permission_classes = [requires_scope("stock:reserve")]

    @extend_schema(
        request=ReservationInputSerializer,
        responses={
            201: OpenApiResponse(ReservationSerializer, description="Reserved (or the same order again).")
        },
    )
    def post(self, request: Request) -> Response:
        return _reserve(request.data)


def _reserve(data: Any) -> Response:
    payload = ReservationInputSerializer(data=data)
    payload.is_valid(raise_exception=True)
    reservation = services.reservation_create(
        order_id=payload.validated_data["order_id"],
        lines=payload.requested_lines(),
        currency=payload.validated_data.get("currency"),
    )
    # The reservation this call made or replayed: no need to read it again.
    return Response(ReservationSerializer(reservation).data, status=status.HTTP_201_CREATED)


class ReservationBatchApi(APIView):
    permission_classes = [requires_scope("stock:reserve")]

    @extend_schema(
        summary="Reserve stock for several orders in one request",
        description=(
            "Each item is a reservation request, validated and run on its own (its own transaction); "
            "its result is the status and body `POST /internal/stock/reservations/` would have "
            "answered for it alone. One item's refusal leaves the others as they are."
        ),
        request=ReservationBatchInputSerializer,
        responses={200: BatchResponseSerializer},
    )
    def post(self, request: Request) -> Response:
        return batch_response(request, self, _reserve)


def _reservation_response(order_id: str, code: int = status.HTTP_200_OK) -> Response:
    reservation = selectors.reservation_get(order_id=order_id)
    return Response(ReservationSerializer(reservation).data, status=code)


class ReservationDetailApi(APIView):
    permission_classes = [requires_scope("stock:read")]

    @extend_schema(responses={200: ReservationSerializer})
    def get(self, request: Request, order_id: str) -> Response:
        return _reservation_response(order_id)


class ReservationReleaseApi(APIView):
    permission_classes = [requires_scope("stock:release")]

    @extend_schema(request=None, responses={200: ReservationSerializer})
    def post(self, request: Request, order_id: str) -> Response:
        services.reservation_release(order_id=order_id)
        return _reservation_response(order_id)


class ReservationCommitApi(APIView):
    permission_classes = [requires_scope("stock:commit")]

    @extend_schema(request=None, responses={200: ReservationSerializer})
    def post(self, request: Request, order_id: str) -> Response:
        services.reservation_commit(order_id=order_id)
        return _reservation_response(order_id)


# --- internal: the reconciliation auditor (read only) ---------------------------


class StockBalanceAuditApi(APIView):
    permission_classes = [requires_scope("stock:audit")]

    @extend_schema(
        tags=["internal"],
        summary="Stock balances by product id (keyset pages), for the reconciliation auditor",
        parameters=[AuditPageQuerySerializer],
        responses={200: StockBalancePageSerializer},
    )
    def get(self, request: Request) -> Response:
        query = audit_page_query(AuditPageQuerySerializer, request)
        rows = selectors.stock_balance_page(after=query["after"], limit=query["limit"])
        body = {"results": rows, "next_after": audit_next_after(rows, query["limit"], "product_id")}
        return Response(StockBalancePageSerializer(body).data)


class ReservationAuditApi(APIView):
    permission_classes = [requires_scope("stock:audit")]

    @extend_schema(
        tags=["internal"],
        summary="Stock reservations by id (keyset pages), for the reconciliation auditor",
        parameters=[
            AuditWindowQuerySerializer,
        ],
        responses={200: ReservationAuditPageSerializer},
    )
    def get(self, request: Request) -> Response:
        query = audit_page_query(AuditWindowQuerySerializer, request)
        rows = selectors.reservation_audit_page(
            after=query["after"],
            limit=query["limit"],
            since=query.get("since"),
            until=query.get("until"),
            order_ids=query.get("order_id", ()),
        )
        body = {"results": rows, "next_after": audit_next_after(rows, query["limit"], "pk")}
        return Response(ReservationAuditPageSerializer(body).data)
