"""`manage.py kafka_acls [--apply]`: the broker ACLs the event catalogue implies.

Prints one line per rule (principal, operation, resource); with `--apply`, makes
the broker hold exactly those rules for the services' principals, which needs
this process's Kafka credentials to be an admin's (a super user, or ALTER on the
cluster).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from comptoir._kafka_acls import apply_acls, catalog_acls, load_catalog
from comptoir._kafka_security import kafka_client_config
from comptoir.events import contracts_dir


class Command(BaseCommand):
    help = "Print (and with --apply, set on the broker) the ACLs derived from contracts/events/catalog.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--apply", action="store_true", help="create missing rules, delete stale ones")

    def handle(self, *args: Any, **options: Any) -> None:
        rules = catalog_acls(load_catalog(contracts_dir() / "catalog.json"))
        for rule in rules:
            self.stdout.write(str(rule))
        if not options["apply"]:
            self.stdout.write(
                f"{len(rules)} rule(s); --apply sets them on {settings.KAFKA_BOOTSTRAP_SERVERS}"
            )
            return
        admin = AdminClient(kafka_client_config(log_level=0))
        try:
            created, deleted = apply_acls(admin, rules)
        except Exception as error:  # noqa: BLE001 - a refusal names the principal to use
            raise CommandError(f"could not apply the ACLs (an admin principal is needed): {error}") from None
        self.stdout.write(f"applied: {len(created)} created, {len(deleted)} deleted, {len(rules)} in force")
