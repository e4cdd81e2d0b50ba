"""HTTP entry points: validate, call a service or selector, answer."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comptoir import ApplicationError, ErrorCode, IsStaff, requires_scope

from .models import SentEmail
from .selectors import MAIL_LOG_MAX, email_get, email_list, mail_log
from .serializers import (
    EmailDetailSerializer,
    EmailFilterSerializer,
    EmailListSerializer,
    EmailRequestInputSerializer,
    EmailRequestOutputSerializer,
    MailLogPageSerializer,
)
from .services import email_request


class EmailRequestApi(APIView):
    """Internal: another service asks for a mail; delivery happens in a Celery worker."""

    permission_classes = [requires_scope("emails:send")]

    @extend_schema(
        operation_id="internal_emails_create",
        request=EmailRequestInputSerializer,
        responses={
            202: OpenApiResponse(EmailRequestOutputSerializer, description="Queued for delivery."),
            200: OpenApiResponse(
                EmailRequestOutputSerializer,
                description="Already requested for this (template, object_id): the existing mail.",
            ),
            400: OpenApiResponse(description="validation_error, unknown_template or missing_context."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = EmailRequestInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email, created = email_request(**serializer.validated_data)
        return Response(
            EmailRequestOutputSerializer(email).data,
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )


class EmailListApi(GenericAPIView[SentEmail]):
    """Staff: the mail log, newest first."""

    permission_classes = [IsStaff]
    serializer_class = EmailListSerializer

    @extend_schema(
        operation_id="emails_list",
        parameters=[
            OpenApiParameter("template", OpenApiTypes.STR, description="Template name."),
            OpenApiParameter("to", OpenApiTypes.EMAIL, description="Recipient (case-insensitive)."),
            OpenApiParameter("status", OpenApiTypes.STR, enum=["QUEUED", "SENT", "FAILED"]),
        ],
        responses={200: EmailListSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = EmailFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(email_list(**filters.validated_data))
        return self.get_paginated_response(EmailListSerializer(page, many=True).data)


class EmailDetailApi(APIView):
    """Staff: one mail with its rendered body and delivery history."""

    permission_classes = [IsStaff]

    @extend_schema(operation_id="emails_retrieve", responses={200: EmailDetailSerializer})
    def get(self, request: Request, email_id: int) -> Response:
        return Response(EmailDetailSerializer(email_get(email_id=email_id)).data)


class MailLogOpsApi(APIView):
    """Staff, under the chassis' operations routes (`/api/ops/email_service/mails/`)."""

    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="ops_mails",
        summary="The mail log, newest first (staff)",
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"1-{MAIL_LOG_MAX}, default 50.")
        ],
        responses={200: MailLogPageSerializer},
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "50")
        limit = int(raw) if raw.isdigit() else 0
        if not 1 <= limit <= MAIL_LOG_MAX:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR,
                f"limit must be a whole number from 1 to {MAIL_LOG_MAX}.",
                details={"limit": [f"not a number from 1 to {MAIL_LOG_MAX}: {raw!r}"]},
            )
        return Response({"results": mail_log(limit=limit)})
