"""`manage.py kafka_acls [--apply] [--upsert-service-user] [--strimzi CLUSTER]`:
the broker ACLs the event catalogue implies.

Prints one line per rule (principal, operation, resource); with `--apply`, makes
the broker hold exactly those rules for the services' principals, which needs
this process's Kafka credentials to be an admin's (a super user, or ALTER on the
cluster). `--upsert-service-user` also creates (or updates) this service's
SCRAM-SHA-512 user with the password in `KAFKA_SERVICE_PASSWORD`. `--strimzi`
prints the same rules as Strimzi `KafkaUser` resources instead.
"""

from __future__ import annotations

import os
from typing import Any

from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from comptoir._kafka_acls import (
    apply_acls,
    catalog_acls,
    load_catalog,
    strimzi_kafka_users,
    upsert_scram_users,
)
from comptoir._kafka_security import kafka_client_config
from comptoir.events import contracts_dir


class Command(BaseCommand):
    help = "Print (and with --apply, set on the broker) the ACLs derived from contracts/events/catalog.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--apply", action="store_true", help="create missing rules, delete stale ones")
        parser.add_argument(
            "--upsert-service-user",
            action="store_true",
            help="create or update this service's SCRAM user (password: $KAFKA_SERVICE_PASSWORD)",
        )
        # Read when the command is set up, like every other setting a process is given.
        parser.set_defaults(service_password=os.environ.get("KAFKA_SERVICE_PASSWORD", ""))
        parser.add_argument(
            "--strimzi", metavar="CLUSTER", help="print Strimzi KafkaUser resources for CLUSTER"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rules = catalog_acls(load_catalog(contracts_dir() / "catalog.json"))
        if options["strimzi"]:
            self.stdout.write(strimzi_kafka_users(rules, cluster=options["strimzi"]), ending="")
            return
        for rule in rules:
            self.stdout.write(str(rule))
        if not options["apply"]:
            self.stdout.write(
                f"{len(rules)} rule(s); --apply sets them on {settings.KAFKA_BOOTSTRAP_SERVERS}"
            )
            return
        admin = AdminClient(kafka_client_config(log_level=0))
        try:
            if options["upsert_service_user"]:
                password = options["service_password"]
                if not password:
                    raise CommandError("KAFKA_SERVICE_PASSWORD is not set (the service principal's password)")
                upsert_scram_users(admin, {settings.COMPTOIR["SERVICE_NAME"]: password})
            created, deleted = apply_acls(admin, rules)
        except CommandError:
            raise
        except Exception as error:  # noqa: BLE001 - a refusal names the principal to use
            raise CommandError(f"could not apply the ACLs (an admin principal is needed): {error}") from None
        self.stdout.write(f"applied: {len(created)} created, {len(deleted)} deleted, {len(rules)} in force")
