"""Reads of user_service's data."""

from __future__ import annotations

from comptoir import NotFoundError

from .errors import UserErrorCode
from .models import ServiceClient, User


def normalize_email(email: str) -> str:
    """Emails are stored and compared lower-cased."""
    return email.strip().lower()


def user_get(*, user_id: int) -> User:
    """Any user by id, active or not (the internal lookup reports `is_active`)."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFoundError(UserErrorCode.USER_NOT_FOUND, f"No user with id {user_id}.")
    return user


def user_get_active(*, user_id: int) -> User:
    """The caller's own account: a deactivated account is gone as far as it is concerned."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise NotFoundError(UserErrorCode.USER_NOT_FOUND, "This account does not exist or is disabled.")
    return user


def user_find_by_email(*, email: str) -> User | None:
    return User.objects.filter(email=normalize_email(email)).first()


def service_client_find(*, name: str) -> ServiceClient | None:
    return ServiceClient.objects.filter(name=name).first()
