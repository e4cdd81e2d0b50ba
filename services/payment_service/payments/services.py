"""Writes: open and credit wallets, charge and refund orders.

Every write runs in one transaction that moves the balance and records the
ledger entry explaining it, both in one statement (`_move`). A charge or refund
takes the order's advisory lock first (below), then the wallet's and the
payment's rows: only a holder of the order's lock ever locks its payment row,
so a charge and a refund never wait on each other crosswise.

Idempotency: `order_id` is unique on `Payment`; a repeated charge finds the
row and answers with it, a repeated refund finds it REFUNDED and answers the
same. The ledger's unique constraints (one CHARGE and one REFUND entry per
payment) back this up in the database.

Tombstones: a refund that finds nothing captured for the order (no payment,
or only a declined one) writes a `ChargeTombstone`, and every later charge of
that order is refused with `order_compensated` (409) without touching the
wallet. Charges and tombstones of one order are serialised by a transaction
advisory lock on the order id, taken first, so a charge in flight either
lands before the refund (which then pays it back) or is refused after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from comptoir import ApplicationError, ErrorCode

from .errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    OrderCompensated,
    PaymentDeclined,
    PaymentNotFound,
)
from .models import ChargeTombstone, LedgerEntry, LedgerEntryKind, Payment, PaymentStatus, Wallet

CENT = Decimal("0.01")
MAX_USER_ID = 2**63 - 1  # user ids are PostgreSQL bigints


def default_currency() -> str:
    return str(settings.PAYMENT_CURRENCIES[0])


def _money(amount: Decimal) -> Decimal:
    """`amount` with two places; zero, negative or sub-cent amounts are refused."""
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "An amount must be positive with at most two decimal places.",
            details={"amount": str(amount)},
        )
    return amount.quantize(CENT)


_MOVE = (
    f"WITH moved AS (UPDATE {Wallet._meta.db_table} SET balance = balance + %s, updated_at = %s "  # noqa: S608
    f"WHERE id = %s RETURNING id) INSERT INTO {LedgerEntry._meta.db_table} "
    "(wallet_id, amount, kind, payment_id, created_at) SELECT id, %s, %s, %s, %s FROM moved RETURNING id"
)


def _move(*, wallet: Wallet, amount: Decimal, kind: LedgerEntryKind, payment: Payment | None) -> LedgerEntry:
    """Adds `amount` (signed) to the locked `wallet` and records why, in the caller's
    transaction: the balance's UPDATE and the ledger's INSERT are one statement, so
    neither lands without the other (a balance below zero refuses both)."""
    now = timezone.now()
    params: list[Any] = [amount, now, wallet.pk, amount, kind, payment.pk if payment else None, now]
    with connection.cursor() as cursor:
        cursor.execute(_MOVE, params)
        row = cursor.fetchone()
    if row is None:
        raise Wallet.DoesNotExist(f"no wallet {wallet.pk} to move money in")
    entry = LedgerEntry(id=row[0], wallet=wallet, amount=amount, kind=kind, payment=payment, created_at=now)
    entry._state.adding, entry._state.db = False, connection.alias
    return entry


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _columns(table: type[models.Model] | str, names: list[str]) -> str:
    """`names` as columns of a model's table or of an alias."""
    prefix = table if isinstance(table, str) else _table(table)
    return ", ".join(f"{prefix}.{connection.ops.quote_name(name)}" for name in names)


_WALLET_FIELDS = [field.attname for field in Wallet._meta.concrete_fields]
_PAYMENT_FIELDS = [field.attname for field in Payment._meta.concrete_fields]
# Where each row's id sits among its columns: NULL there when the lateral read found no row.
_WALLET_ID, _PAYMENT_ID = _WALLET_FIELDS.index("id"), _PAYMENT_FIELDS.index("id")
# The charge's locking read, written out (the ORM built it again on every charge,
# most of the CPU a read costs): the user's wallet and the order's payment, each
# locked, and whether a refund left the order a tombstone, in one statement. It
# runs under the order's advisory lock (`_lock_order`, its own statement before
# it, so this one's snapshot sees whatever the previous holder committed): the
# payment and the tombstone of the order are written only under that lock, and
# the wallet's row lock rereads the row's latest version.
_LOCK_CHARGE_ROWS = (
    f"SELECT {_columns('w', _WALLET_FIELDS)}, {_columns('p', _PAYMENT_FIELDS)}, "  # noqa: S608 - the models' own tables and columns
    f"EXISTS (SELECT 1 FROM {_table(ChargeTombstone)} WHERE order_id = %s) FROM (SELECT) AS one "
    f"LEFT JOIN LATERAL (SELECT * FROM {_table(Wallet)} WHERE user_id = %s FOR UPDATE) AS w ON true "
    f"LEFT JOIN LATERAL (SELECT * FROM {_table(Payment)} WHERE order_id = %s FOR UPDATE) AS p ON true"
)
_LOCK_PAYMENT = (
    f"SELECT {_columns(Payment, _PAYMENT_FIELDS)} FROM {_table(Payment)} "  # noqa: S608
    "WHERE order_id = %s FOR UPDATE"
)


@dataclass(frozen=True)
class _ChargeRows:
    """What a charge reads under the order's lock: the user's wallet and the
    order's payment (None: none yet), both locked, and whether a refund left the
    order a tombstone."""

    wallet: Wallet | None
    payment: Payment | None
    compensated: bool


def _locked_charge_rows(*, user_id: int, order_id: str) -> _ChargeRows:
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_CHARGE_ROWS, [order_id, user_id, order_id])
        row = cursor.fetchone()
    assert row is not None  # the statement always returns its one row
    wallet_values = row[: len(_WALLET_FIELDS)]
    payment_values = row[len(_WALLET_FIELDS) : -1]
    wallet = payment = None
    if wallet_values[_WALLET_ID] is not None:
        wallet = Wallet.from_db(connection.alias, _WALLET_FIELDS, wallet_values)
    if payment_values[_PAYMENT_ID] is not None:
        payment = Payment.from_db(connection.alias, _PAYMENT_FIELDS, payment_values)
    return _ChargeRows(wallet=wallet, payment=payment, compensated=bool(row[-1]))


def _locked_payment(order_id: str) -> Payment | None:
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_PAYMENT, [order_id])
        row = cursor.fetchone()
    return None if row is None else Payment.from_db(connection.alias, _PAYMENT_FIELDS, row)


def _lock_order(order_id: str) -> None:
    """Serialises every charge and refund of `order_id` until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"payment:{order_id}"])


def wallet_get_or_create(*, user_id: int) -> Wallet:
    """The user's wallet; a user who never had one gets an empty one in the default currency."""
    wallet, _created = Wallet.objects.get_or_create(
        user_id=user_id, defaults={"currency": default_currency()}
    )
    return wallet


@transaction.atomic
def wallet_credit(*, user_id: int, amount: Decimal) -> Wallet:
    """Tops the wallet up by `amount` (a CREDIT entry), opening it if needed."""
    if not 1 <= user_id <= MAX_USER_ID:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"User ids are 1 to {MAX_USER_ID}.",
            details={"user_id": user_id},
        )
    amount = _money(amount)
    wallet_get_or_create(user_id=user_id)
    wallet = Wallet.objects.select_for_update().get(user_id=user_id)
    _move(wallet=wallet, amount=amount, kind=LedgerEntryKind.CREDIT, payment=None)
    wallet.refresh_from_db()
    return wallet


@transaction.atomic
def wallet_open(*, user_id: int, initial_balance: Decimal) -> tuple[Wallet, bool]:
    """Opens the wallet with `initial_balance` (as a CREDIT) unless it exists: safe to rerun."""
    wallet, created = Wallet.objects.get_or_create(user_id=user_id, defaults={"currency": default_currency()})
    if created and initial_balance > 0:
        wallet = wallet_credit(user_id=user_id, amount=initial_balance)
    return wallet, created


def payment_charge(*, order_id: str, user_id: int, amount: Decimal, currency: str) -> Payment:
    """Charges `amount` to the user's wallet for `order_id`, once.

    A repeat with the same parameters returns the existing payment (CAPTURED,
    or REFUNDED if it was paid back since); a repeat with other parameters is
    an `IdempotencyConflict`. A refused charge (no wallet, not enough funds,
    other currency) leaves the balance untouched, is recorded as a FAILED
    payment (committed) and raises `PaymentDeclined`; a later attempt for the
    same order with enough funds captures it.
    """
    attempt = _charge(order_id=order_id, user_id=user_id, amount=_money(amount), currency=currency)
    if attempt.declined is not None:
        raise attempt.declined
    return attempt.payment


@dataclass(frozen=True)
class ChargeAttempt:
    """What a charge call did: the payment, why it was declined (None: captured or
    unchanged), and whether this call decided anything (False: an earlier call had)."""

    payment: Payment
    declined: PaymentDeclined | None
    attempted: bool


def payment_charge_once(*, order_id: str, user_id: int, amount: Decimal, currency: str) -> ChargeAttempt:
    """Charges the order only if it has no payment yet, and says what happened.

    The saga's consumer charges an order once: a repeat finds the payment of
    the first call, captured or declined alike, and changes nothing
    (`attempted` False). A decline is not raised but returned, its FAILED
    payment written in the caller's transaction. A repeat with other
    parameters is an `IdempotencyConflict`.
    """
    return _charge(
        order_id=order_id,
        user_id=user_id,
        amount=_money(amount),
        currency=currency,
        retry_declined=False,
        savepoint=False,
    )


def _charge(
    *,
    order_id: str,
    user_id: int,
    amount: Decimal,
    currency: str,
    retry_declined: bool = True,
    savepoint: bool = True,
) -> ChargeAttempt:
    """The charge in its transaction. Its refusals (a repeat with other
    parameters, a compensated order) come before any write and are raised once
    the transaction block is left: inside the consumer's transaction
    (`savepoint` False, as `payment_charge_once` calls it) the handler catches
    them and goes on, with nothing to undo."""
    with transaction.atomic(savepoint=savepoint):
        outcome = _charge_locked(
            order_id=order_id,
            user_id=user_id,
            amount=amount,
            currency=currency,
            retry_declined=retry_declined,
        )
    if isinstance(outcome, ApplicationError):
        raise outcome
    return outcome


def _charge_locked(
    *, order_id: str, user_id: int, amount: Decimal, currency: str, retry_declined: bool
) -> ChargeAttempt | IdempotencyConflict | OrderCompensated:
    _lock_order(order_id)
    # The wallet lock serialises every charge of one user: funds are checked and
    # debited by one transaction at a time, so concurrent charges cannot overdraw.
    # Read with it: the order's payment and whether a refund left the order a
    # tombstone (the wallet's lock does not extend to them; the order's lock covers them).
    rows = _locked_charge_rows(user_id=user_id, order_id=order_id)
    wallet, payment = rows.wallet, rows.payment
    if payment is not None:
        conflict = _other_charge(payment=payment, user_id=user_id, amount=amount, currency=currency)
        if conflict is not None:
            return conflict
        if payment.status != PaymentStatus.FAILED or not retry_declined:
            return ChargeAttempt(payment=payment, declined=None, attempted=False)
    if rows.compensated:
        return OrderCompensated(order_id=order_id)
    if payment is None:
        payment = Payment(order_id=order_id, user_id=user_id, amount=amount, currency=currency)

    declined = _decline_reason(wallet=wallet, order_id=order_id, amount=amount, currency=currency)
    if declined is None:
        payment.status = PaymentStatus.CAPTURED
        payment.failure_code = ""
        payment.captured_at = timezone.now()
    else:
        payment.status = PaymentStatus.FAILED
        payment.failure_code = declined.code
    if payment._state.adding:
        # No savepoint against a concurrent insert: every insert of a payment is
        # this one, under the order's lock (taken first, above), so a second
        # charge of the order waits for this transaction and then finds the row.
        payment.save()
    else:
        payment.save(update_fields=["status", "failure_code", "captured_at", "updated_at"])

    if declined is None and wallet is not None:
        _move(wallet=wallet, amount=-amount, kind=LedgerEntryKind.CHARGE, payment=payment)
    return ChargeAttempt(payment=payment, declined=declined, attempted=True)


def _other_charge(
    *, payment: Payment, user_id: int, amount: Decimal, currency: str
) -> IdempotencyConflict | None:
    """The refusal of a repeat whose parameters differ from the stored payment's."""
    stored = {"user_id": payment.user_id, "amount": str(payment.amount), "currency": payment.currency}
    requested = {"user_id": user_id, "amount": str(amount), "currency": currency}
    if stored == requested:
        return None
    return IdempotencyConflict(
        details={"order_id": payment.order_id, "existing": stored, "requested": requested}
    )


def _decline_reason(
    *, wallet: Wallet | None, order_id: str, amount: Decimal, currency: str
) -> PaymentDeclined | None:
    details: dict[str, Any] = {"order_id": order_id, "amount": str(amount), "currency": currency}
    if wallet is None:
        # No wallet is an empty wallet: the caller hears the same as for a low balance.
        return InsufficientFunds(details={**details, "balance": "0.00"})
    if wallet.currency != currency:
        return CurrencyMismatch(details={**details, "wallet_currency": wallet.currency})
    if wallet.balance < amount:
        return InsufficientFunds(details={**details, "balance": str(wallet.balance)})
    return None


def payment_refund(*, order_id: str) -> Payment:
    """Pays a CAPTURED payment back into its wallet, once; a repeat returns the REFUNDED payment.

    An order with no payment, or only a FAILED one, has nothing to refund:
    `PaymentNotFound`, which the saga reads as "nothing to compensate"; a
    tombstone then refuses any later charge of the order.
    """
    payment = _refund(order_id=order_id)
    if payment is None:
        raise PaymentNotFound("Nothing was captured for this order; no charge of it can capture now.")
    return payment


@transaction.atomic
def _refund(*, order_id: str) -> Payment | None:
    """The refunded payment, or None (nothing captured: tombstoned)."""
    _lock_order(order_id)
    owner = Payment.objects.filter(order_id=order_id).values_list("user_id", flat=True).first()
    wallet = None if owner is None else Wallet.objects.select_for_update().filter(user_id=owner).first()
    payment = _locked_payment(order_id)
    if payment is not None and payment.status == PaymentStatus.REFUNDED:
        return payment
    if payment is None or payment.status == PaymentStatus.FAILED or wallet is None:
        ChargeTombstone.objects.get_or_create(order_id=order_id)
        return None
    _pay_back(wallet=wallet, payment=payment)
    return payment


def _pay_back(*, wallet: Wallet, payment: Payment) -> LedgerEntry:
    """Credits a locked CAPTURED payment back to its locked wallet and marks it REFUNDED."""
    entry = _move(wallet=wallet, amount=payment.amount, kind=LedgerEntryKind.REFUND, payment=payment)
    payment.status = PaymentStatus.REFUNDED
    payment.refunded_at = timezone.now()
    payment.save(update_fields=["status", "refunded_at", "updated_at"])
    return entry


@dataclass(frozen=True)
class Refund:
    payment: Payment
    entry: LedgerEntry


@transaction.atomic
def payment_refund_if_captured(*, order_id: str) -> Refund | None:
    """Pays the order's payment back if it is CAPTURED; returns the refund only then.

    None when there is nothing to pay back: no payment, a FAILED one, or one
    already REFUNDED (e.g. by the orchestrator over HTTP). With nothing
    captured, a tombstone refuses any later charge of the order.
    """
    _lock_order(order_id)
    owner = Payment.objects.filter(order_id=order_id).values_list("user_id", flat=True).first()
    wallet = None if owner is None else Wallet.objects.select_for_update().filter(user_id=owner).first()
    payment = _locked_payment(order_id)
    if payment is None or payment.status == PaymentStatus.FAILED:
        ChargeTombstone.objects.get_or_create(order_id=order_id)
        return None
    if payment.status != PaymentStatus.CAPTURED or wallet is None:
        return None
    return Refund(payment=payment, entry=_pay_back(wallet=wallet, payment=payment))
