"""Writes: accounts, sessions (refresh tokens), service clients, demo data."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from comptoir import ApplicationError, ConflictError, NotFoundError

from .errors import AuthenticationError, UserErrorCode
from .models import RefreshToken, ServiceClient, User
from .publishing import publish_user_deactivated, publish_user_registered
from .revocation import access_token_revoke, session_access_revoke, user_access_revoke
from .selectors import normalize_email, service_client_find, user_find_by_email
from .tokens import IssuedToken, access_token_issue, service_token_issue


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int


# --- accounts -------------------------------------------------------------------


def user_register(*, email: str, password: str, full_name: str = "") -> User:
    user = User(email=normalize_email(email), full_name=full_name)
    try:
        validate_password(password, user=user)
    except DjangoValidationError as error:
        raise ApplicationError(
            UserErrorCode.WEAK_PASSWORD,
            "The password is too weak.",
            details={"password": list(error.messages)},
        ) from None
    user.set_password(password)
    with transaction.atomic():
        try:
            # The unique constraint decides, not a prior lookup: two racing sign-ups
            # with one email end with one account and one 409.
            with transaction.atomic():
                user.save(force_insert=True)
        except IntegrityError:
            raise ConflictError(
                UserErrorCode.EMAIL_TAKEN,
                "An account with this email already exists.",
                details={"email": ["An account with this email already exists."]},
            ) from None
        # In the same transaction (outbox): the event exists if and only if the account does.
        publish_user_registered(user=user)
    return user


@transaction.atomic
def user_profile_update(*, user_id: int, full_name: str | None = None) -> User:
    user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first()
    if user is None:
        raise NotFoundError(UserErrorCode.USER_NOT_FOUND, "This account does not exist or is disabled.")
    if full_name is not None:
        user.full_name = full_name
        user.save(update_fields=["full_name"])
    return user


# --- sessions -------------------------------------------------------------------


def _refresh_hash(raw: str) -> str:
    # A refresh token carries 256 random bits: a fast hash is enough to make a
    # leaked table useless, and lets the token be looked up by its hash.
    return hashlib.sha256(raw.encode()).hexdigest()


def _refresh_token_create(*, user: User, family: uuid.UUID) -> tuple[str, RefreshToken]:
    raw = secrets.token_urlsafe(32)
    now = timezone.now()
    row = RefreshToken.objects.create(
        user=user,
        token_hash=_refresh_hash(raw),
        family=family,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.JWT_REFRESH_TOKEN_LIFETIME_S),
    )
    return raw, row


def _token_pair(*, user: User, refresh: str, session: uuid.UUID) -> TokenPair:
    access = access_token_issue(user=user, session_id=session.hex)
    return TokenPair(access=access.token, refresh=refresh, expires_in=access.expires_in)


def auth_login(*, email: str, password: str) -> TokenPair:
    user = user_find_by_email(email=email)
    if user is None:
        # Hash anyway: an unknown email takes as long as a wrong password.
        make_password(password)
    if user is None or not user.check_password(password) or not user.is_active:
        raise AuthenticationError(UserErrorCode.INVALID_CREDENTIALS, "Email or password is incorrect.")
    session = uuid.uuid4()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
        refresh, _ = _refresh_token_create(user=user, family=session)
    return _token_pair(user=user, refresh=refresh, session=session)


def auth_refresh(*, refresh_token: str) -> TokenPair:
    """Trades a refresh token for a new pair; the presented token is spent.

    Presenting a token that was already rotated means two parties hold it (one
    of them a thief): the whole family is revoked, so both must log in again.
    """
    now = timezone.now()
    failure: UserErrorCode | None = None
    with transaction.atomic():
        row = (
            RefreshToken.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(token_hash=_refresh_hash(refresh_token))
            .first()
        )
        if row is None or row.expires_at <= now or not row.user.is_active:
            failure = UserErrorCode.INVALID_REFRESH_TOKEN
        elif row.revoked_at is not None:
            if row.replaced_by_id is not None:
                RefreshToken.objects.filter(family=row.family, revoked_at__isnull=True).update(revoked_at=now)
                failure = UserErrorCode.REFRESH_TOKEN_REUSED
            else:
                failure = UserErrorCode.INVALID_REFRESH_TOKEN
        else:
            refresh, successor = _refresh_token_create(user=row.user, family=row.family)
            row.revoked_at = now
            row.replaced_by = successor
            row.save(update_fields=["revoked_at", "replaced_by"])
    # Raised after the commit: the family revocation above must stick.
    if failure is UserErrorCode.REFRESH_TOKEN_REUSED:
        raise AuthenticationError(failure, "This refresh token was already used; log in again.")
    if failure is not None or row is None:
        raise AuthenticationError(UserErrorCode.INVALID_REFRESH_TOKEN, "The refresh token is not valid.")
    return _token_pair(user=row.user, refresh=refresh, session=row.family)


def auth_logout(*, refresh_token: str, access_claims: dict[str, Any] | None = None) -> None:
    """Ends the session the token belongs to: its refresh tokens, and at the gateway
    its access tokens (and the access token presented with the logout, when it was).
    An unknown token is not an error (RFC 7009)."""
    row = RefreshToken.objects.filter(token_hash=_refresh_hash(refresh_token)).first()
    if row is not None:
        session_revoke(families=[row.family])
        session_access_revoke(session_id=row.family.hex)
    if access_claims is not None:
        access_token_revoke(jti=str(access_claims["jti"]), expires_at=float(access_claims["exp"]))


def user_deactivate(*, user_id: int) -> bool:
    """Closes an account: it can no longer log in, its sessions end, its access
    tokens are refused at the gateway at once and `user.deactivated` tells
    order_service (which keeps the customers it verified). False when there was
    no active account."""
    with transaction.atomic():
        changed = User.objects.filter(pk=user_id, is_active=True).update(is_active=False)
        if changed:
            publish_user_deactivated(user_id=user_id)
        live = RefreshToken.objects.filter(user_id=user_id, revoked_at__isnull=True)
        live.update(revoked_at=timezone.now())
    user_access_revoke(user_id=user_id)
    return bool(changed)


def session_revoke(*, families: list[uuid.UUID]) -> int:
    """Revokes every live refresh token of these login sessions; returns how many."""
    return RefreshToken.objects.filter(family__in=families, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


# --- service clients --------------------------------------------------------------


# Secrets this process has already checked against a stored hash: client name ->
# (the stored hash it matched, SHA-256 of the secret). Valid only while the row
# still holds that same hash, so a changed secret is checked (and stretched) again.
_verified_secrets: dict[str, tuple[str, bytes]] = {}
_verified_secrets_lock = threading.Lock()


def service_token_obtain(*, client_id: str, client_secret: str) -> IssuedToken:
    client = service_client_find(name=client_id)
    if client is None:
        make_password(client_secret)  # same cost as a wrong secret
    if client is None or not client.is_active or not _service_secret_matches(client, client_secret):
        raise AuthenticationError(UserErrorCode.INVALID_CLIENT, "Unknown client or wrong secret.")
    return service_token_issue(client=client)


def _service_secret_matches(client: ServiceClient, secret: str) -> bool:
    """`check_password` once per (client, stored hash, secret) in this process.

    Every process of every service asks for a token at start-up and again every
    few minutes, all with the same secret: stretching it each time (a second of
    CPU with PBKDF2's iterations) made a restarted platform's first orders wait
    seconds for their tokens. The stored hash stays a slow one.
    """
    digest = hashlib.sha256(secret.encode()).digest()
    with _verified_secrets_lock:
        known = _verified_secrets.get(client.name)
    if known is not None and known[0] == client.secret_hash and hmac.compare_digest(known[1], digest):
        return True
    if not check_password(secret, client.secret_hash):
        return False
    with _verified_secrets_lock:
        _verified_secrets[client.name] = (client.secret_hash, digest)
    return True


@transaction.atomic
def service_client_set(*, name: str, secret: str, is_active: bool = True) -> ServiceClient:
    """Creates or updates a client; the secret is re-hashed only when it changed."""
    client, created = ServiceClient.objects.select_for_update().get_or_create(
        name=name, defaults={"secret_hash": make_password(secret), "is_active": is_active}
    )
    if created:
        return client
    changed = []
    if not check_password(secret, client.secret_hash):
        client.secret_hash = make_password(secret)
        changed.append("secret_hash")
    if client.is_active != is_active:
        client.is_active = is_active
        changed.append("is_active")
    if changed:
        client.save(update_fields=changed)
    return client


# --- demo data ------------------------------------------------------------------


@transaction.atomic
def user_seed(*, user_id: int, email: str, password: str, full_name: str, is_staff: bool) -> User:
    """Makes user `user_id` exactly this account, whatever was there (idempotent)."""
    user, _ = User.objects.select_for_update().get_or_create(
        pk=user_id, defaults={"email": normalize_email(email)}
    )
    user.email = normalize_email(email)
    user.full_name = full_name
    user.is_staff = is_staff
    user.is_superuser = is_staff
    user.is_active = True
    if not user.check_password(password):
        user.set_password(password)
    user.save()
    return user


def user_id_sequence_reset() -> None:
    """Moves the id sequence past every existing id, never backwards (ids are not reused)."""
    table = User._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (sequence,) = cursor.fetchone() or (None,)
        if sequence is None:  # pragma: no cover - the id column always has a sequence
            raise RuntimeError(f"{table}.id has no sequence")
        highest = User.objects.aggregate(highest=Max("id"))["highest"] or 1
        cursor.execute(
            "SELECT setval(%s::regclass, GREATEST(%s, (SELECT COALESCE(last_value, 1) FROM pg_sequences"
            " WHERE schemaname || '.' || sequencename = %s)))",
            [sequence, highest, sequence],
        )
