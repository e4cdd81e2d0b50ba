"""Demo data `make up` loads: three users with fixed ids and one client per service."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from users.services import service_client_set, user_id_sequence_reset, user_seed


class DemoUser(NamedTuple):
    user_id: int
    email: str
    password: str
    full_name: str
    is_staff: bool


DEMO_USERS = (
    DemoUser(1, "staff@comptoir.dev", "Comptoir-staff-2026", "Comptoir Staff", is_staff=True),
    DemoUser(2, "alice@comptoir.dev", "Alice-demo-2026", "Alice Martin", is_staff=False),
    DemoUser(3, "bob@comptoir.dev", "Bob-demo-2026", "Bob Durand", is_staff=False),
)

SERVICE_CLIENTS = ("product_service", "order_service", "payment_service", "email_service", "api_gateway")


def service_client_secret(name: str) -> str:
    """`SERVICE_CLIENT_SECRET_<NAME>` (the devstack draws one per checkout); a default only with DEBUG."""
    variable = f"SERVICE_CLIENT_SECRET_{name.upper()}"
    value = os.environ.get(variable, "")
    if value:
        return value
    if settings.DEBUG:
        return f"{name}-local-secret"
    raise CommandError(
        f"{variable} is not set: every service client needs a secret of its own (DEBUG is False)"
    )


class Command(BaseCommand):
    help = "Creates (or resets) the demo users 1..3 and the platform's service clients. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        secrets = {name: service_client_secret(name) for name in SERVICE_CLIENTS}  # all, before any write
        with transaction.atomic():
            for demo_user in DEMO_USERS:
                user = user_seed(**demo_user._asdict())
                self.stdout.write(f"user {user.pk} {user.email}{' (staff)' if user.is_staff else ''}")
            user_id_sequence_reset()
            for name in SERVICE_CLIENTS:
                service_client_set(name=name, secret=secrets[name])
                self.stdout.write(f"service client {name}")
        self.stdout.write(self.style.SUCCESS("demo data ready"))
