"""`manage.py reconcile`: one run of the reconciliation auditor, on demand.

Prints the report (checked rows, then each violation kind with its count and
first offending ids) and exits 1 when anything is broken, 2 when a service
could not be asked, 0 otherwise. Celery beat runs the same checks periodically
(`orders.reconcile`) and exports them as comptoir_reconciliation_violations;
both keep their report (ReconciliationRun) for `GET /api/ops/order_service/sagas/`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from comptoir import UpstreamError
from orders.reconciliation import reconcile, reconciliation_run_record


def _since(value: str) -> datetime:
    """An ISO 8601 time, or a number of hours back from now."""
    try:
        return timezone.now() - timedelta(hours=float(value))
    except ValueError:
        pass
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a time or a number of hours: {value!r}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Checks orders, payments, wallets and stock across services; exits 1 on any violation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            type=_since,
            help="only orders, payments and reservations created since: an ISO time or hours back (e.g. 24)",
        )
        parser.add_argument(
            "--settle-seconds",
            type=float,
            help="rows younger than this are in flight, not judged (default RECONCILE_SETTLE_S)",
        )
        parser.add_argument(
            "--deadline-seconds",
            type=float,
            help="a PENDING order older than this missed its saga deadline (default SAGA_DEADLINE_S)",
        )
        parser.add_argument("--sample-size", type=int, help="offending ids shown per kind")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = reconcile(
                since=options["since"],
                settle_s=options["settle_seconds"],
                deadline_s=options["deadline_seconds"],
                sample_size=options["sample_size"],
            )
        except UpstreamError as error:
            raise CommandError(f"reconciliation incomplete: {error}", returncode=2) from error
        # The operations console shows the last report, whoever ran it.
        reconciliation_run_record(report=report, source="command")
        for line in report.lines():
            self.stdout.write(line)
        if report.total:
            raise CommandError(f"{report.total} violation(s) of the cross-service invariants", returncode=1)
