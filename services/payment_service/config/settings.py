"""payment_service settings: the chassis's base settings plus what this service owns."""

from comptoir.settings import *

INSTALLED_APPS += ["payments"]

# Currencies a charge may be made in; the first one is the currency of new wallets.
PAYMENT_CURRENCIES = [
    code.strip() for code in env.str("PAYMENT_CURRENCIES", default="EUR").split(",") if code.strip()
]
# How many ledger entries GET /api/payments/wallet/ shows.
PAYMENT_WALLET_RECENT_ENTRIES = env.int("PAYMENT_WALLET_RECENT_ENTRIES", default=20)
