from django.urls import path

from . import views

api_urlpatterns = [
    path("register/", views.RegisterView.as_view(), name="users-register"),
    path("auth/login/", views.LoginView.as_view(), name="users-login"),
    path("auth/refresh/", views.RefreshView.as_view(), name="users-refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="users-logout"),
    path("auth/jwks/", views.JWKSView.as_view(), name="users-jwks"),
    path("me/", views.MeView.as_view(), name="users-me"),
]

internal_urlpatterns = [
    path("<int:user_id>/", views.InternalUserView.as_view(), name="internal-user"),
    # Client credentials: other services only; the gateway never routes /internal/.
    path("auth/service-token/", views.ServiceTokenView.as_view(), name="internal-service-token"),
]
