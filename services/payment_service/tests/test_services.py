from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from comptoir import ApplicationError
from payments.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    OrderCompensated,
    PaymentErrorCode,
    PaymentNotFound,
)
from payments.models import ChargeTombstone, LedgerEntry, LedgerEntryKind, Payment, PaymentStatus, Wallet
from payments.services import (
    payment_charge,
    payment_charge_once,
    payment_refund,
    wallet_credit,
    wallet_get_or_create,
)

from .conftest import ALICE, BOB, assert_ledger_explains_balance, balance_of

pytestmark = pytest.mark.django_db


def charge(order_id: str = "order-1", amount: str = "10.00", user_id: int = ALICE) -> Payment:
    return payment_charge(order_id=order_id, user_id=user_id, amount=Decimal(amount), currency="EUR")


def test_charge_debits_the_exact_amount_with_one_ledger_entry(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(balance="100.00")

    payment = charge(amount="12.34")

    assert (payment.status, payment.amount, payment.currency, payment.user_id) == (
        PaymentStatus.CAPTURED,
        Decimal("12.34"),
        "EUR",
        ALICE,
    )
    assert payment.captured_at is not None
    assert payment.failure_code == ""
    assert balance_of(ALICE) == Decimal("87.66")
    entry = LedgerEntry.objects.get(payment=payment)
    assert (entry.kind, entry.amount, entry.wallet_id) == (
        LedgerEntryKind.CHARGE,
        Decimal("-12.34"),
        wallet.pk,
    )
    assert_ledger_explains_balance(wallet)


@pytest.mark.django_db(transaction=True)  # its own transaction, as over HTTP
def test_a_charge_inserts_its_payment_without_a_savepoint(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(balance="100.00")
    with CaptureQueriesContext(connection) as queries:
        charge(amount="12.34")
    statements = [q["sql"] for q in queries.captured_queries]
    # The order's advisory lock comes first and serialises every insert of its payment.
    assert statements[0] == "BEGIN"
    assert "pg_advisory_xact_lock" in statements[1]
    assert not [sql for sql in statements if "SAVEPOINT" in sql]
    # The order's lock; the wallet, the payment and the tombstone read and locked
    # by one statement; the payment's insert; the balance's move with its ledger
    # entry (one statement).
    assert [sql.split()[0] for sql in statements] == [
        "BEGIN",
        "SELECT",
        "SELECT",
        "INSERT",
        "WITH",
        "COMMIT",
    ]
    assert statements[3].startswith('INSERT INTO "payments_payment"')
    locking_read = statements[2]
    for table in ("payments_wallet", "payments_payment", "payments_chargetombstone"):
        assert table in locking_read
    assert locking_read.count("FOR UPDATE") == 2
    assert "UPDATE payments_wallet" in statements[4]
    assert "INSERT INTO payments_ledgerentry" in statements[4]
    assert balance_of(ALICE) == Decimal("87.66")


def test_the_consumers_charge_takes_no_savepoint_and_its_refusal_leaves_the_transaction_usable(
    make_wallet: Callable[..., Wallet],
) -> None:
    make_wallet(balance="100.00")
    ChargeTombstone.objects.create(order_id="order-2")
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:  # as the consumer's batch
        attempt = payment_charge_once(
            order_id="order-1", user_id=ALICE, amount=Decimal("10.00"), currency="EUR"
        )
        assert (attempt.attempted, attempt.declined) == (True, None)
        with pytest.raises(OrderCompensated):
            payment_charge_once(order_id="order-2", user_id=ALICE, amount=Decimal("5.00"), currency="EUR")
        assert Payment.objects.filter(order_id="order-1").exists()  # the transaction goes on
    assert not [q["sql"] for q in queries.captured_queries if "SAVEPOINT" in q["sql"]]
    assert balance_of(ALICE) == Decimal("90.00")
    assert not Payment.objects.filter(order_id="order-2").exists()


def test_charge_of_the_whole_balance_leaves_zero(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(balance="10.00")
    charge(amount="10.00")
    assert balance_of(ALICE) == Decimal("0.00")
    assert_ledger_explains_balance(wallet)


def test_repeated_charge_returns_the_same_payment_and_debits_once(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(balance="100.00")

    first = charge(amount="30.00")
    second = charge(amount="30.00")
    third = charge(amount="30")  # the same amount, written differently

    assert first.pk == second.pk == third.pk
    assert Payment.objects.count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).count() == 1
    assert balance_of(ALICE) == Decimal("70.00")
    assert_ledger_explains_balance(wallet)


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", Decimal("11.00")), ("user_id", BOB), ("currency", "USD")],
)
@override_settings(PAYMENT_CURRENCIES=["EUR", "USD"])
def test_repeated_charge_with_other_parameters_is_a_conflict_and_changes_nothing(
    make_wallet: Callable[..., Wallet], field: str, value: object
) -> None:
    make_wallet(user_id=ALICE, balance="100.00")
    make_wallet(user_id=BOB, balance="100.00")
    original = charge(amount="10.00")
    request = {"order_id": "order-1", "user_id": ALICE, "amount": Decimal("10.00"), "currency": "EUR"}
    request[field] = value

    with pytest.raises(IdempotencyConflict) as caught:
        payment_charge(**request)  # type: ignore[arg-type]

    assert caught.value.code == PaymentErrorCode.IDEMPOTENCY_CONFLICT
    assert caught.value.status_code == 409
    assert caught.value.details["existing"] == {"user_id": ALICE, "amount": "10.00", "currency": "EUR"}
    assert list(Payment.objects.values_list("pk", "status", "amount")) == [
        (original.pk, PaymentStatus.CAPTURED, Decimal("10.00"))
    ]
    assert (balance_of(ALICE), balance_of(BOB)) == (Decimal("90.00"), Decimal("100.00"))
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).count() == 1


def test_insufficient_funds_leaves_balance_and_ledger_untouched(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(balance="20.00")
    entries_before = list(LedgerEntry.objects.values_list("pk", "amount"))

    with pytest.raises(InsufficientFunds) as caught:
        charge(amount="20.01")

    assert caught.value.status_code == 409
    assert caught.value.code == "insufficient_funds"
    assert caught.value.details == {
        "order_id": "order-1",
        "amount": "20.01",
        "currency": "EUR",
        "balance": "20.00",
    }
    assert balance_of(ALICE) == Decimal("20.00")
    assert list(LedgerEntry.objects.values_list("pk", "amount")) == entries_before
    # The declined attempt is kept for support, but nothing is captured.
    failed = Payment.objects.get(order_id="order-1")
    assert (failed.status, failed.failure_code, failed.captured_at) == (
        PaymentStatus.FAILED,
        "insufficient_funds",
        None,
    )
    assert not Payment.objects.filter(status=PaymentStatus.CAPTURED).exists()
    assert_ledger_explains_balance(wallet)


def test_retry_after_a_top_up_captures_the_failed_attempt_once(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(balance="5.00")
    with pytest.raises(InsufficientFunds):
        charge(amount="15.00")
    with pytest.raises(InsufficientFunds):
        charge(amount="15.00")
    failed_id = Payment.objects.get(order_id="order-1").pk

    wallet_credit(user_id=ALICE, amount=Decimal("10.00"))
    payment = charge(amount="15.00")
    again = charge(amount="15.00")

    assert payment.pk == again.pk == failed_id
    assert (payment.status, payment.failure_code) == (PaymentStatus.CAPTURED, "")
    assert balance_of(ALICE) == Decimal("0.00")
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).count() == 1
    assert_ledger_explains_balance(wallet)


def test_charge_without_a_wallet_is_insufficient_funds_and_opens_none() -> None:
    with pytest.raises(InsufficientFunds) as caught:
        charge(user_id=99, amount="1.00")

    assert caught.value.details["balance"] == "0.00"
    assert not Wallet.objects.filter(user_id=99).exists()
    assert not LedgerEntry.objects.exists()
    assert Payment.objects.get(order_id="order-1").status == PaymentStatus.FAILED


@override_settings(PAYMENT_CURRENCIES=["EUR", "USD"])
def test_charge_in_another_currency_than_the_wallet_is_declined(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(balance="100.00")

    with pytest.raises(CurrencyMismatch) as caught:
        payment_charge(order_id="order-1", user_id=ALICE, amount=Decimal("10.00"), currency="USD")

    assert (caught.value.code, caught.value.status_code) == ("currency_mismatch", 409)
    assert caught.value.details["wallet_currency"] == "EUR"
    assert balance_of(ALICE) == Decimal("100.00")
    assert Payment.objects.get().failure_code == "currency_mismatch"


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00", "0.001", "NaN"])
def test_charge_refuses_amounts_that_are_not_positive_cents(
    make_wallet: Callable[..., Wallet], amount: str
) -> None:
    make_wallet(balance="100.00")
    with pytest.raises(ApplicationError) as caught:
        charge(amount=amount)
    assert (caught.value.code, caught.value.status_code) == ("validation_error", 400)
    assert not Payment.objects.exists()
    assert balance_of(ALICE) == Decimal("100.00")


def test_refund_credits_the_payment_back_once(make_payment: Callable[..., Payment]) -> None:
    payment = make_payment(amount="40.00", balance="100.00")
    assert balance_of(ALICE) == Decimal("60.00")

    refunded = payment_refund(order_id="order-1")
    again = payment_refund(order_id="order-1")

    assert refunded.pk == again.pk == payment.pk
    assert (again.status, again.amount) == (PaymentStatus.REFUNDED, Decimal("40.00"))
    assert again.refunded_at is not None
    assert balance_of(ALICE) == Decimal("100.00")
    refunds = LedgerEntry.objects.filter(kind=LedgerEntryKind.REFUND)
    assert list(refunds.values_list("amount", "payment_id")) == [(Decimal("40.00"), payment.pk)]
    assert_ledger_explains_balance(Wallet.objects.get(user_id=ALICE))


def test_charge_after_a_refund_answers_the_refunded_payment_without_debiting(
    make_payment: Callable[..., Payment],
) -> None:
    make_payment(amount="40.00", balance="100.00")
    payment_refund(order_id="order-1")

    replay = charge(amount="40.00")

    assert replay.status == PaymentStatus.REFUNDED
    assert balance_of(ALICE) == Decimal("100.00")
    assert LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).count() == 1


def test_refund_of_an_unknown_order_is_payment_not_found(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(balance="100.00")
    with pytest.raises(PaymentNotFound) as caught:
        payment_refund(order_id="never-charged")
    assert (caught.value.code, caught.value.status_code) == ("payment_not_found", 404)
    assert balance_of(ALICE) == Decimal("100.00")
    assert not LedgerEntry.objects.filter(kind=LedgerEntryKind.REFUND).exists()


def test_refund_of_a_failed_payment_has_nothing_to_refund(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(balance="5.00")
    with pytest.raises(InsufficientFunds):
        charge(amount="50.00")

    with pytest.raises(PaymentNotFound):
        payment_refund(order_id="order-1")

    assert Payment.objects.get().status == PaymentStatus.FAILED
    assert balance_of(ALICE) == Decimal("5.00")
    assert not LedgerEntry.objects.filter(kind=LedgerEntryKind.REFUND).exists()


def test_the_ledger_explains_the_balance_after_every_operation(make_wallet: Callable[..., Wallet]) -> None:
    wallet = make_wallet(balance="50.00")
    steps: list[tuple[str, Decimal]] = []

    def step(name: str) -> None:
        assert_ledger_explains_balance(wallet)
        steps.append((name, wallet.balance))

    step("opened")
    charge("o-1", "20.00")
    step("charged o-1")
    charge("o-2", "25.50")
    step("charged o-2")
    with pytest.raises(InsufficientFunds):
        charge("o-3", "4.51")
    step("declined o-3")
    payment_refund(order_id="o-1")
    step("refunded o-1")
    charge("o-3", "4.51")
    step("charged o-3")
    wallet_credit(user_id=ALICE, amount=Decimal("0.01"))
    step("credited")
    payment_refund(order_id="o-1")
    step("refund replayed")

    assert steps == [
        ("opened", Decimal("50.00")),
        ("charged o-1", Decimal("30.00")),
        ("charged o-2", Decimal("4.50")),
        ("declined o-3", Decimal("4.50")),
        ("refunded o-1", Decimal("24.50")),
        ("charged o-3", Decimal("19.99")),
        ("credited", Decimal("20.00")),
        ("refund replayed", Decimal("20.00")),
    ]


def test_credit_opens_a_missing_wallet_and_adds_a_credit_entry() -> None:
    wallet = wallet_credit(user_id=42, amount=Decimal("12.50"))

    assert (wallet.user_id, wallet.balance, wallet.currency) == (42, Decimal("12.50"), "EUR")
    assert list(wallet.entries.values_list("kind", "amount", "payment_id")) == [
        (LedgerEntryKind.CREDIT, Decimal("12.50"), None)
    ]


def test_wallet_get_or_create_opens_an_empty_wallet_once() -> None:
    first = wallet_get_or_create(user_id=42)
    second = wallet_get_or_create(user_id=42)
    assert first.pk == second.pk
    assert (first.balance, first.currency) == (Decimal("0.00"), "EUR")
    assert not LedgerEntry.objects.exists()


# --- tombstones: a refund that found nothing refuses every later charge ---------------


def test_a_charge_of_a_compensated_order_without_a_wallet_is_refused_as_compensated() -> None:
    with pytest.raises(PaymentNotFound):
        payment_refund(order_id="order-1")
    with pytest.raises(OrderCompensated):
        charge(order_id="order-1", amount="10.00", user_id=BOB)
    assert not Payment.objects.exists()
    assert not Wallet.objects.filter(user_id=BOB).exists()


def test_a_charge_after_the_refund_of_an_unknown_order_is_refused_and_takes_nothing(
    make_wallet: Callable[..., Wallet],
) -> None:
    make_wallet(balance="100.00")
    with pytest.raises(PaymentNotFound):
        payment_refund(order_id="order-1")

    with pytest.raises(OrderCompensated) as caught:
        charge(order_id="order-1", amount="10.00")

    assert (caught.value.code, caught.value.status_code) == ("order_compensated", 409)
    assert caught.value.details == {"order_id": "order-1"}
    assert balance_of(ALICE) == Decimal("100.00")
    assert not Payment.objects.exists()
    assert not LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).exists()
    assert list(ChargeTombstone.objects.values_list("order_id", flat=True)) == ["order-1"]
    # The tombstone is for that order only; a repeated refund keeps one.
    with pytest.raises(PaymentNotFound):
        payment_refund(order_id="order-1")
    assert ChargeTombstone.objects.count() == 1
    assert charge(order_id="order-2", amount="10.00").status == PaymentStatus.CAPTURED


def test_a_declined_charge_refunded_then_retried_with_funds_is_refused(
    make_wallet: Callable[..., Wallet],
) -> None:
    make_wallet(balance="5.00")
    with pytest.raises(InsufficientFunds):
        charge(amount="50.00")
    with pytest.raises(PaymentNotFound):
        payment_refund(order_id="order-1")
    wallet_credit(user_id=ALICE, amount=Decimal("100.00"))

    with pytest.raises(OrderCompensated):
        charge(amount="50.00")

    assert balance_of(ALICE) == Decimal("105.00")
    assert Payment.objects.get().status == PaymentStatus.FAILED
    assert not LedgerEntry.objects.filter(kind=LedgerEntryKind.CHARGE).exists()


def test_a_refund_of_a_captured_payment_leaves_no_tombstone(make_wallet: Callable[..., Wallet]) -> None:
    make_wallet(balance="100.00")
    charge(amount="10.00")

    assert payment_refund(order_id="order-1").status == PaymentStatus.REFUNDED

    assert not ChargeTombstone.objects.exists()
    assert charge(amount="10.00").status == PaymentStatus.REFUNDED
    assert balance_of(ALICE) == Decimal("100.00")
