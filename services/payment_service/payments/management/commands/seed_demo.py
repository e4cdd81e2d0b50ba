"""Demo wallets for the fixed demo users of user_service; safe to run again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand

from payments.services import wallet_open

# user id → opening balance: staff, alice, bob (ids fixed by user_service's seed).
DEMO_WALLETS = {
    1: Decimal("1000.00"),
    2: Decimal("500.00"),
    3: Decimal("20.00"),
}


class Command(BaseCommand):
    help = "Opens the demo users' wallets with their opening balance; existing wallets are left as they are."

    def handle(self, *args: Any, **options: Any) -> None:
        for user_id, balance in DEMO_WALLETS.items():
            wallet, created = wallet_open(user_id=user_id, initial_balance=balance)
            state = "opened" if created else "exists"
            self.stdout.write(
                f"wallet of user {user_id}: {state}, balance {wallet.balance} {wallet.currency}"
            )
