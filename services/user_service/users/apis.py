"""HTTP entry points: validate the request, call a service or selector, shape the answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import get_authorization_header
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from comptoir import ErrorResponseSerializer, InvalidToken, IsEndUser, Principal, decode_token, requires_scope

from . import keys, selectors, services
from .serializers import (
    InternalUserSerializer,
    JWKSSerializer,
    LoginInputSerializer,
    ProfileSerializer,
    ProfileUpdateSerializer,
    RefreshInputSerializer,
    RegisteredUserSerializer,
    RegisterInputSerializer,
    ServiceTokenInputSerializer,
    ServiceTokenSerializer,
    TokenPairSerializer,
)
from .throttles import AuthRateThrottle

ERROR = OpenApiResponse(ErrorResponseSerializer, description="Standard error body.")


def _token_pair_body(pair: services.TokenPair) -> dict[str, Any]:
    return {
        "access": pair.access,
        "refresh": pair.refresh,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }


def _principal(request: Request) -> Principal:
    user = request.user
    assert isinstance(user, Principal)  # guaranteed by the permission classes
    return user


def _user_id(request: Request) -> int:
    user_id = _principal(request).user_id
    assert user_id is not None  # IsEndUser lets only user tokens through
    return user_id


def _access_claims(request: Request) -> dict[str, Any] | None:
    """The verified claims of the access token the request carries, if it carries a valid one."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    try:
        claims = decode_token(parts[1].decode("ascii"))
    except (UnicodeDecodeError, InvalidToken):
        return None
    return claims if claims.get("token_use") == "access" and "jti" in claims else None


# An endpoint anyone may call: no bearer token is read, so a stale one cannot block it.
class PublicApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]


class RegisterApi(PublicApi):
    throttle_classes = [AuthRateThrottle]
    throttle_scope = "register"

    @extend_schema(
        operation_id="users_register",
        tags=["users"],
        request=RegisterInputSerializer,
        responses={201: RegisteredUserSerializer, 400: ERROR, 409: ERROR, 429: ERROR},
        summary="Create an account (password checked by the password validators).",
    )
    def post(self, request: Request) -> Response:
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return Response(RegisteredUserSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginApi(PublicApi):
    throttle_classes = [AuthRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        operation_id="users_login",
        tags=["auth"],
        request=LoginInputSerializer,
        responses={200: TokenPairSerializer, 400: ERROR, 401: ERROR, 429: ERROR},
        summary="Trade email and password for an access token and a refresh token.",
    )
    def post(self, request: Request) -> Response:
        data = LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_login(**data.validated_data)
        return Response(_token_pair_body(pair))


class RefreshApi(PublicApi):
    throttle_classes = [AnonRateThrottle]

    @extend_schema(
        operation_id="users_refresh",
        tags=["auth"],
        request=RefreshInputSerializer,
        responses={200: TokenPairSerializer, 400: ERROR, 401: ERROR},
        summary="Trade a refresh token for a new pair; the presented refresh token is spent.",
    )
    def post(self, request: Request) -> Response:
        data = RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_refresh(refresh_token=data.validated_data["refresh"])
        return Response(_token_pair_body(pair))


class LogoutApi(PublicApi):
    throttle_classes = [AnonRateThrottle]

    @extend_schema(
        operation_id="users_logout",
        tags=["auth"],
        request=RefreshInputSerializer,
        responses={204: None, 400: ERROR},
        summary="Revoke the session the refresh token belongs to, its access tokens included.",
        description=(
            "The session's refresh tokens stop working, and so do its access tokens at the gateway "
            "(at once, not at their expiry). An access token sent as `Authorization: Bearer` is "
            "revoked too; an invalid one is ignored."
        ),
    )
    def post(self, request: Request) -> Response:
        data = RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.auth_logout(
            refresh_token=data.validated_data["refresh"], access_claims=_access_claims(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class JWKSApi(PublicApi):
    throttle_classes = []

    @extend_schema(
        operation_id="users_jwks",
        tags=["auth"],
        responses={200: JWKSSerializer},
        summary="The public keys that verify this platform's tokens (active and previous).",
    )
    def get(self, request: Request) -> Response:
        return Response(keys.jwks(), headers={"Cache-Control": "public, max-age=60"})


class ServiceTokenApi(PublicApi):
    throttle_classes = [AuthRateThrottle]
    throttle_scope = "service_token"

    @extend_schema(
        operation_id="internal_service_token",
        tags=["internal"],
        request=ServiceTokenInputSerializer,
        responses={200: ServiceTokenSerializer, 400: ERROR, 401: ERROR, 429: ERROR},
        summary="Client credentials: a service trades its secret for a short-lived service token.",
    )
    def post(self, request: Request) -> Response:
        data = ServiceTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.service_token_obtain(**data.validated_data)
        return Response(
            {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}
        )


class MeApi(APIView):
    permission_classes = [IsEndUser]

    @extend_schema(
        operation_id="users_me_retrieve",
        tags=["users"],
        responses={200: ProfileSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
        summary="My profile.",
    )
    def get(self, request: Request) -> Response:
        user = selectors.user_get_active(user_id=_user_id(request))
        return Response(ProfileSerializer(user).data)

    @extend_schema(
        operation_id="users_me_partial_update",
        tags=["users"],
        request=ProfileUpdateSerializer,
        responses={200: ProfileSerializer, 400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR},
        summary="Change my profile (only full_name; other fields are ignored).",
    )
    def patch(self, request: Request) -> Response:
        data = ProfileUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.user_profile_update(user_id=_user_id(request), **data.validated_data)
        return Response(ProfileSerializer(user).data)


class InternalUserApi(APIView):
    permission_classes = [requires_scope("users:read")]

    @extend_schema(
        operation_id="internal_users_retrieve",
        tags=["internal"],
        responses={200: InternalUserSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
        summary="Does this user exist, and is the account active? (service tokens only)",
    )
    def get(self, request: Request, user_id: int) -> Response:
        return Response(InternalUserSerializer(selectors.user_get(user_id=user_id)).data)
