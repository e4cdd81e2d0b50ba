"""Fixtures: wallets opened through the service (so their ledger explains them),
tokens for each kind of caller, and the ledger invariant as one assertion."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.db.models import Sum
from django.test import Client

from comptoir.events.testing import ServiceProcesses, service_processes, unique_topics
from payments.models import LedgerEntry, Payment, Wallet
from payments.services import payment_charge, wallet_open

if TYPE_CHECKING:
    from comptoir.testing import TokenFactory

pytest_plugins = ["comptoir.testing"]

ALICE = 2
BOB = 3
STAFF = 1

CHARGE_URL = "/internal/payments/charge/"
REFUND_URL = "/internal/payments/refund/"


def ledger_sum(wallet: Wallet) -> Decimal:
    total = LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"]
    return total if total is not None else Decimal("0.00")


def assert_ledger_explains_balance(wallet: Wallet) -> None:
    wallet.refresh_from_db()
    assert ledger_sum(wallet) == wallet.balance


def balance_of(user_id: int) -> Decimal:
    return Wallet.objects.get(user_id=user_id).balance


@pytest.fixture
def make_wallet() -> Callable[..., Wallet]:
    def make(user_id: int = ALICE, balance: str = "100.00") -> Wallet:
        wallet, _created = wallet_open(user_id=user_id, initial_balance=Decimal(balance))
        return wallet

    return make


@pytest.fixture
def make_payment(make_wallet: Callable[..., Wallet]) -> Callable[..., Payment]:
    """A CAPTURED payment for `order_id`, charged to a wallet opened with `balance` if missing."""

    def make(
        order_id: str = "order-1", user_id: int = ALICE, amount: str = "10.00", balance: str = "100.00"
    ) -> Payment:
        make_wallet(user_id=user_id, balance=balance)
        return payment_charge(order_id=order_id, user_id=user_id, amount=Decimal(amount), currency="EUR")

    return make


@pytest.fixture
def service_headers(tokens: TokenFactory) -> dict[str, str]:
    return tokens.header(tokens.service("order_service"))


@pytest.fixture
def user_headers(tokens: TokenFactory) -> Callable[..., dict[str, str]]:
    def headers(user_id: int = ALICE, *, is_staff: bool = False) -> dict[str, str]:
        return tokens.header(tokens.user(user_id, is_staff=is_staff))

    return headers


@pytest.fixture
def post_json(client: Client) -> Callable[..., Any]:
    def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return client.post(url, body, content_type="application/json", headers=headers or {})

    return post


@pytest.fixture
def charge_body() -> Callable[..., dict[str, Any]]:
    def body(**overrides: Any) -> dict[str, Any]:
        return {"order_id": "order-1", "user_id": ALICE, "amount": "10.00", "currency": "EUR", **overrides}

    return body


# ------------------------------------------------------------------ events

# What payment_service consumes and produces.
EVENT_TYPES = [
    "stock.reserved",
    "order.cancelled",
    "payment.succeeded",
    "payment.failed",
    "payment.refunded",
]


@pytest.fixture
def event_topics(settings: Any) -> dict[str, str]:
    """Topics of the test's own for every event type the service touches (here and in subprocesses)."""
    topics = unique_topics(EVENT_TYPES)
    settings.COMPTOIR_EVENTS = {**getattr(settings, "COMPTOIR_EVENTS", {}), "TOPICS": topics}
    return topics


@pytest.fixture
def processes(
    transactional_db: None, event_topics: dict[str, str], tmp_path: Path
) -> Iterator[ServiceProcesses]:
    """The service's own relay and consumer processes, started by the test, stopped and cleaned after."""
    yield from service_processes(tmp_path, event_topics)
