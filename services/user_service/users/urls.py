"""The routes of user_service: `urlpatterns` (public and internal), `ops_routes` (see README.md)."""

from django.urls import URLPattern, URLResolver, path

from . import apis

urlpatterns = [
    path("api/users/register/", apis.RegisterApi.as_view(), name="users-register"),
    path("api/users/auth/login/", apis.LoginApi.as_view(), name="users-login"),
    path("api/users/auth/refresh/", apis.RefreshApi.as_view(), name="users-refresh"),
    path("api/users/auth/logout/", apis.LogoutApi.as_view(), name="users-logout"),
    path("api/users/auth/jwks/", apis.JWKSApi.as_view(), name="users-jwks"),
    path("api/users/me/", apis.MeApi.as_view(), name="users-me"),
    path("internal/users/<int:user_id>/", apis.InternalUserApi.as_view(), name="internal-user"),
    # Client credentials: other services only.
    path("internal/users/auth/service-token/", apis.ServiceTokenApi.as_view(), name="internal-service-token"),
]

ops_routes: list[URLPattern | URLResolver] = []
