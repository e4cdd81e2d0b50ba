"""`manage.py seed_admin --email E`: this service's admin login (a superuser), created
or reset with the password in DJANGO_ADMIN_PASSWORD. Idempotent.

Each service has its own database, hence its own admin accounts; the devstack
seeds the same login in every one (`make up` prints it). A deployment creates
its staff accounts its own way (`createsuperuser`), never with a known password.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction


class Command(BaseCommand):
    help = "Creates or resets this service's admin login (password from DJANGO_ADMIN_PASSWORD)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="the login (an e-mail address)")

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DJANGO_ADMIN_PASSWORD", "")
        if not password:
            raise CommandError("DJANGO_ADMIN_PASSWORD is not set: the admin login needs a password")
        email: str = options["email"]
        user_model = get_user_model()
        with transaction.atomic():
            user = (
                user_model._default_manager.select_for_update()
                .filter(**{user_model.USERNAME_FIELD: email})
                .first()
            )
            if user is None:
                user = user_model(**{user_model.USERNAME_FIELD: email})
            if hasattr(user, "email"):
                user.email = email
            user.is_active = True
            user.is_staff = True
            user.is_superuser = True
            user.set_password(password)
            user.save()
        self.stdout.write(f"admin login {email} ready")
