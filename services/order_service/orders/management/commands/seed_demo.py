"""`manage.py seed_demo`: order_service has no demo data of its own.

Orders are placed by the demo flow through the API (priced by
product_service), so seeding them here would bypass what the demo shows.
"""

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "No demo data: orders are placed through the API by the demo flow."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("order_service: nothing to seed (orders are placed through the API).")
