from typing import Any

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comptoir import ApplicationError, IsEndUser, IsServiceClient, IsStaff, NotFoundError, Principal

from .models import Note


class NoteSerializer(serializers.ModelSerializer[Note]):
    class Meta:
        model = Note
        fields = ["id", "title", "body"]


class NoteView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request, pk: int) -> Response:
        note = Note.objects.filter(pk=pk).first()
        if note is None:
            raise NotFoundError("note_not_found", f"No note {pk}.")
        return Response(NoteSerializer(note).data)

    def post(self, request: Request, **kwargs: Any) -> Response:
        serializer = NoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["title"] == "taken":
            raise ApplicationError("title_taken", "That title is taken.", status_code=409)
        note = serializer.save()
        return Response(NoteSerializer(note).data, status=201)


class BoomView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise RuntimeError("secret internals must not leak")


def _whoami(request: Request) -> Response:
    principal = request.user
    assert isinstance(principal, Principal)
    return Response(
        {"user_id": principal.user_id, "is_staff": principal.is_staff, "service": principal.service}
    )


class MeView(APIView):
    permission_classes = [IsEndUser]

    def get(self, request: Request) -> Response:
        return _whoami(request)


class StaffView(APIView):
    permission_classes = [IsStaff]

    def get(self, request: Request) -> Response:
        return _whoami(request)


class InternalView(APIView):
    permission_classes = [IsServiceClient]

    def get(self, request: Request) -> Response:
        return _whoami(request)
