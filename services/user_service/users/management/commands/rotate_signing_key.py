"""Rotates the JWT signing key: a new key signs, the previous one stays published."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from users.keys import KeyStoreError, published_keys, rotate_signing_key


class Command(BaseCommand):
    help = (
        "Generates a new signing key and makes it active. The previous key stays in the JWKS so "
        "tokens it signed keep verifying until they expire; older keys are deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keep",
            type=int,
            default=None,
            help="How many keys to keep, the new one included (default: JWT_PUBLISHED_KEYS, minimum 2).",
        )

    def handle(self, *args: Any, keep: int | None, **options: Any) -> None:
        try:
            key = rotate_signing_key(keep=keep)
        except KeyStoreError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"active signing key: {key.kid}")
        self.stdout.write(f"published: {', '.join(k.kid for k in published_keys())}")
