"""Django admin: accounts, service clients, and sessions (refresh tokens) for support."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.hashers import make_password
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import RefreshToken, ServiceClient, User
from .selectors import normalize_email
from .services import session_revoke, user_deactivate


class UserCreateForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "password",
            "full_name",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    list_display = ("id", "email", "full_name", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "full_name")
    ordering = ("id",)
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "usable_password", "password1", "password2"),
            },
        ),
    )
    actions = ("deactivate",)

    @admin.action(description="Deactivate the selected accounts (their tokens stop working at once)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        closed = sum(user_deactivate(user_id=user.pk) for user in queryset)
        self.message_user(request, f"{closed} account(s) deactivated.")

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm[User], change: bool) -> None:
        was_active = change and User.objects.filter(pk=obj.pk, is_active=True).exists()
        super().save_model(request, obj, form, change)
        if was_active and not obj.is_active:
            # Unticking "active" closes the account the same way as the action.
            user_deactivate(user_id=obj.pk)


class ServiceClientForm(forms.ModelForm[ServiceClient]):
    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored hashed. Leave empty to keep the current secret.",
    )

    class Meta:
        model = ServiceClient
        fields = ("name", "is_active")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.instance.pk is None and not cleaned.get("secret"):
            self.add_error("secret", "A new client needs a secret.")
        return cleaned


@admin.register(ServiceClient)
class ServiceClientAdmin(admin.ModelAdmin[ServiceClient]):
    form = ServiceClientForm
    list_display = ("name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name",)

    def save_model(self, request: HttpRequest, obj: ServiceClient, form: Any, change: bool) -> None:
        if form.cleaned_data.get("secret"):
            obj.secret_hash = make_password(form.cleaned_data["secret"])
        super().save_model(request, obj, form, change)


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin[RefreshToken]):
    list_display = ("id", "user", "family", "created_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("user__email",)
    list_select_related = ("user",)
    fields = ("user", "family", "created_at", "expires_at", "revoked_at", "replaced_by")
    readonly_fields = fields
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the sessions of the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[RefreshToken]) -> None:
        revoked = session_revoke(families=list(queryset.values_list("family", flat=True)))
        self.message_user(request, f"{revoked} refresh token(s) revoked.")
