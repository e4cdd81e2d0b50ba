from django.urls import path

from . import apis

api_urlpatterns = [
    path("register/", apis.RegisterApi.as_view(), name="users-register"),
    path("auth/login/", apis.LoginApi.as_view(), name="users-login"),
    path("auth/refresh/", apis.RefreshApi.as_view(), name="users-refresh"),
    path("auth/logout/", apis.LogoutApi.as_view(), name="users-logout"),
    path("auth/jwks/", apis.JWKSApi.as_view(), name="users-jwks"),
    path("me/", apis.MeApi.as_view(), name="users-me"),
]

internal_urlpatterns = [
    path("<int:user_id>/", apis.InternalUserApi.as_view(), name="internal-user"),
    # Client credentials: other services only; the gateway never routes /internal/.
    path("auth/service-token/", apis.ServiceTokenApi.as_view(), name="internal-service-token"),
]
