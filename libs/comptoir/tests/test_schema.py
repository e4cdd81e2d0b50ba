"""The chassis' AutoSchema documents the error statuses a view can answer, in one error body."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comptoir import IsStaff
from comptoir._schema import ERROR_SCHEMA


class ThingSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()


class OpenView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(responses={200: ThingSerializer})
    def get(self, request: Request) -> Response:
        return Response({"name": "open"})


class StaffThingView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses={200: ThingSerializer, 404: OpenApiResponse(description="No such thing.")})
    def get(self, request: Request, pk: int) -> Response:
        return Response({"name": "thing"})

    @extend_schema(request=ThingSerializer, responses={200: ThingSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return Response({"name": "thing"})


def _schema() -> dict[str, Any]:
    patterns = [path("open/", OpenView.as_view()), path("things/<int:pk>/", StaffThingView.as_view())]
    generator = SchemaGenerator(patterns=patterns)  # type: ignore[no-untyped-call]
    schema: dict[str, Any] = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    return schema


ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def test_a_public_unthrottled_read_declares_no_error() -> None:
    assert list(_schema()["paths"]["/open/"]["get"]["responses"]) == ["200"]


def test_a_staff_write_on_a_detail_route_declares_what_it_can_answer() -> None:
    responses = _schema()["paths"]["/things/{id}/"]["put"]["responses"]

    assert list(responses) == ["200", "400", "401", "403", "404", "409", "415", "429"]
    for status in ["400", "401", "403", "404", "409", "415", "429"]:
        assert responses[status]["content"] == ERROR_REF


def test_a_status_the_view_describes_keeps_its_description_and_gets_the_error_body() -> None:
    responses = _schema()["paths"]["/things/{id}/"]["get"]["responses"]

    assert list(responses) == ["200", "401", "403", "404", "429"]
    assert responses["404"] == {"description": "No such thing.", "content": ERROR_REF}


def test_the_error_component_is_the_body_the_exception_handler_writes() -> None:
    assert _schema()["components"]["schemas"]["ErrorResponse"] == ERROR_SCHEMA
