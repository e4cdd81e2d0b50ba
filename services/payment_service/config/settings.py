"""payment_service settings: the chassis defaults plus what this service owns."""

import os
from pathlib import Path

from comptoir import service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("payment_service", BASE_DIR))

INSTALLED_APPS += ["payments"]  # type: ignore[name-defined]  # noqa: F821

# Currencies a charge may be made in; the first one is the currency of new wallets.
PAYMENT_CURRENCIES = [
    code.strip() for code in os.environ.get("PAYMENT_CURRENCIES", "EUR").split(",") if code.strip()
]
# How many ledger entries GET /api/payments/wallet/ shows.
PAYMENT_WALLET_RECENT_ENTRIES = int(os.environ.get("PAYMENT_WALLET_RECENT_ENTRIES", "20"))
