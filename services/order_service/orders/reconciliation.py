"""The reconciliation auditor: checks the invariants that span services.

No service reads another's database: order_service reads its own orders, and
asks payment_service and product_service for theirs through read-only internal
routes (`payments:audit`, `stock:audit`) that page by id (keyset pages of at
most RECONCILE_PAGE_SIZE rows). Each page is compared in memory, so a run on a
big database holds one page at a time.

The invariants, one violation kind each (`ViolationKind`):

- a CONFIRMED order has a CAPTURED (unrefunded) payment of its total, and a
  COMMITTED reservation of exactly its lines;
- a CANCELLED order has no captured payment left and no held or committed stock;
- no order stays PENDING past its saga deadline (SAGA_DEADLINE_S, both modes);
- every payment and reservation belongs to an order order_service knows;
- a payment's ledger entries match its status; a wallet's balance is the sum of
  its ledger; a product's available stock is the sum of its stock movements and
  equals the stock received minus the units held and committed.

Rows still in flight are not judged: an order is judged once it has not
changed for RECONCILE_SETTLE_S (choreography compensates after the order is
CANCELLED), a payment or reservation once it is that old. Wallets and stock
balances are read each in one statement, so they are always consistent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from comptoir import ErrorCode, UpstreamError, UpstreamResponse

from .clients import payment_service_client, product_service_client
from .models import Order, OrderLine, OrderStatus, ReconciliationRun

PAYMENTS_AUDIT_PATH = "/internal/payments/audit/payments/"
WALLETS_AUDIT_PATH = "/internal/payments/audit/wallets/"
RESERVATIONS_AUDIT_PATH = "/internal/stock/audit/reservations/"
STOCK_AUDIT_PATH = "/internal/stock/audit/products/"
ZERO = Decimal("0.00")
# Order ids asked for in one query string (stays well under a server's request-line limit).
ORDER_IDS_PER_LOOKUP = 100


class ViolationKind(StrEnum):
    CONFIRMED_WITHOUT_CAPTURE = "confirmed_without_capture"
    CONFIRMED_AMOUNT_MISMATCH = "confirmed_amount_mismatch"
    CONFIRMED_WITHOUT_COMMIT = "confirmed_without_commit"
    CONFIRMED_LINES_MISMATCH = "confirmed_lines_mismatch"
    CANCELLED_WITH_CAPTURE = "cancelled_with_capture"
    CANCELLED_WITH_STOCK = "cancelled_with_stock"
    ORDER_PENDING_PAST_DEADLINE = "order_pending_past_deadline"
    PAYMENT_WITHOUT_ORDER = "payment_without_order"
    RESERVATION_WITHOUT_ORDER = "reservation_without_order"
    PAYMENT_LEDGER_MISMATCH = "payment_ledger_mismatch"
    WALLET_LEDGER_MISMATCH = "wallet_ledger_mismatch"
    STOCK_LEDGER_MISMATCH = "stock_ledger_mismatch"


@dataclass
class ReconciliationReport:
    """Counts per violation kind (every kind, zeros included), the first
    offending ids of each, and how many rows of each sort were checked."""

    sample_size: int
    violations: dict[ViolationKind, int] = field(default_factory=lambda: dict.fromkeys(ViolationKind, 0))
    samples: dict[ViolationKind, list[str]] = field(default_factory=dict)
    checked: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("orders", "payments", "reservations", "wallets", "products"), 0
        )
    )
    # Rows settled before this could be judged (None: not run yet).
    judged_until: datetime | None = None

    def add(self, kind: ViolationKind, offender: object) -> None:
        self.violations[kind] += 1
        sample = self.samples.setdefault(kind, [])
        if len(sample) < self.sample_size:
            sample.append(str(offender))

    @property
    def total(self) -> int:
        return sum(self.violations.values())

    def by_kind(self) -> dict[str, int]:
        return {kind.value: count for kind, count in self.violations.items()}

    def lines(self) -> list[str]:
        """The report as printed by `manage.py reconcile`."""
        checked = ", ".join(f"{count} {what}" for what, count in self.checked.items())
        out = [f"reconciliation: checked {checked}"]
        for kind, count in self.violations.items():
            sample = self.samples.get(kind, [])
            more = f" (first: {', '.join(sample)})" if sample else ""
            out.append(f"  {kind.value:<30} {count}{more}")
        out.append(f"reconciliation: {self.total} violation(s)")
        return out


def reconcile(
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    settled_since: datetime | None = None,
    settle_s: float | None = None,
    deadline_s: float | None = None,
    page_size: int | None = None,
    sample_size: int | None = None,
) -> ReconciliationReport:
    """One run of every check; `since` bounds the orders, payments and
    reservations looked at to those created since then (wallets and stock
    balances are always read whole, page by page). `settled_since` narrows it
    to what settled since then (the periodic run: what the previous one could
    not judge yet): settled orders last changed since then, payments and
    reservations created since then; an order PENDING past its deadline is
    reported by every run. `report.judged_until` says where the next run starts."""
    now = now or timezone.now()
    settled = now - timedelta(seconds=float(settings.RECONCILE_SETTLE_S if settle_s is None else settle_s))
    deadline = now - timedelta(seconds=float(settings.SAGA_DEADLINE_S if deadline_s is None else deadline_s))
    size = int(page_size or settings.RECONCILE_PAGE_SIZE)
    report = ReconciliationReport(
        sample_size=int(settings.RECONCILE_SAMPLE_SIZE if sample_size is None else sample_size),
        judged_until=settled,
    )
    rows_since = max(since, settled_since) if since and settled_since else since or settled_since
    _check_orders(
        report, since=since, settled_since=settled_since, settled=settled, deadline=deadline, size=size
    )
    _check_payments(report, since=rows_since, settled=settled, size=size)
    _check_reservations(report, since=rows_since, settled=settled, size=size)
    _check_wallets(report, size=size)
    _check_stock(report, size=size)
    return report


def periodic_run_start() -> datetime | None:
    """Where the next periodic run starts judging: the previous periodic run's
    `judged_until` less RECONCILE_OVERLAP_S (rows whose transaction committed late,
    clocks apart); None without a previous run (the whole window). A run that
    overran or failed records nothing, so the next starts from the last recorded one."""
    previous = (
        ReconciliationRun.objects.filter(source="beat", judged_until__isnull=False)
        .values_list("judged_until", flat=True)
        .first()
    )
    if previous is None:
        return None
    return previous - timedelta(seconds=float(settings.RECONCILE_OVERLAP_S))


# Reports kept for the operations console (the newest first); older ones are deleted.
KEPT_RUNS = 100


@transaction.atomic
def reconciliation_run_record(*, report: ReconciliationReport, source: str) -> ReconciliationRun:
    """Keeps `report` as the auditor's last one (and drops the oldest beyond KEPT_RUNS)."""
    run = ReconciliationRun.objects.create(
        source=source,
        total=report.total,
        violations=report.by_kind(),
        samples={kind.value: ids for kind, ids in report.samples.items()},
        checked=dict(report.checked),
        judged_until=report.judged_until,
    )
    stale = ReconciliationRun.objects.order_by("-finished_at", "-id").values_list("pk", flat=True)[KEPT_RUNS:]
    ReconciliationRun.objects.filter(pk__in=list(stale)).delete()
    return run


# --- orders: each judged against its payment and its reservation ---------------


def _check_orders(
    report: ReconciliationReport,
    *,
    since: datetime | None,
    settled_since: datetime | None,
    settled: datetime,
    deadline: datetime,
    size: int,
) -> None:
    settled_orders = ~Q(status=OrderStatus.PENDING) & Q(updated_at__lt=settled)
    if settled_since is not None:
        settled_orders &= Q(updated_at__gte=settled_since)
    orders = Order.objects.filter(Q(status=OrderStatus.PENDING, created_at__lt=deadline) | settled_orders)
    if since is not None:
        orders = orders.filter(created_at__gte=since)
    after = 0
    while True:
        page = list(orders.filter(pk__gt=after).order_by("pk")[:size])
        if not page:
            return
        after = page[-1].pk
        report.checked["orders"] += len(page)
        ids = [str(order.pk) for order in page if order.status != OrderStatus.PENDING]
        ordered = _lines_by_order([order.pk for order in page if order.status == OrderStatus.CONFIRMED])
        payments = _by_order(_fetch(payment_service_client, PAYMENTS_AUDIT_PATH, order_id=ids, limit=size))
        reservations = _by_order(
            _fetch(product_service_client, RESERVATIONS_AUDIT_PATH, order_id=ids, limit=size)
        )
        for order in page:
            if order.status == OrderStatus.PENDING:
                report.add(ViolationKind.ORDER_PENDING_PAST_DEADLINE, order.pk)
                continue
            payment = payments.get(str(order.pk))
            reservation = reservations.get(str(order.pk))
            if order.status == OrderStatus.CONFIRMED:
                _judge_confirmed(report, order, ordered.get(order.pk, {}), payment, reservation)
            else:
                _judge_cancelled(report, order, payment, reservation)
        if len(page) < size:
            return


def _lines_by_order(order_ids: list[int]) -> dict[int, dict[int, int]]:
    """Each order's quantities by product id, for a page of orders in one read (a
    prefetch builds a related manager and a queryset per order, which cost more
    than the page's reads and calls together)."""
    lines: dict[int, dict[int, int]] = {}
    rows = OrderLine.objects.filter(order_id__in=order_ids).values_list("order_id", "product_id", "quantity")
    for order_id, product_id, quantity in rows:
        lines.setdefault(order_id, {})[product_id] = quantity
    return lines


def _judge_confirmed(
    report: ReconciliationReport,
    order: Order,
    ordered: dict[int, int],
    payment: dict[str, Any] | None,
    reservation: dict[str, Any] | None,
) -> None:
    if payment is None or payment["status"] != "CAPTURED":
        report.add(ViolationKind.CONFIRMED_WITHOUT_CAPTURE, order.pk)
    elif (Decimal(payment["amount"]), payment["currency"], int(payment["user_id"])) != (
        order.total,
        order.currency,
        order.user_id,
    ):
        report.add(ViolationKind.CONFIRMED_AMOUNT_MISMATCH, order.pk)
    if reservation is None or reservation["status"] != "COMMITTED":
        report.add(ViolationKind.CONFIRMED_WITHOUT_COMMIT, order.pk)
    else:
        held = {int(line["product_id"]): int(line["quantity"]) for line in reservation["lines"]}
        if held != ordered:
            report.add(ViolationKind.CONFIRMED_LINES_MISMATCH, order.pk)


def _judge_cancelled(
    report: ReconciliationReport,
    order: Order,
    payment: dict[str, Any] | None,
    reservation: dict[str, Any] | None,
) -> None:
    if payment is not None and payment["status"] == "CAPTURED":
        report.add(ViolationKind.CANCELLED_WITH_CAPTURE, order.pk)
    if reservation is not None and reservation["status"] in ("RESERVED", "COMMITTED"):
        report.add(ViolationKind.CANCELLED_WITH_STOCK, order.pk)


# --- payments and reservations: each must belong to a known order ---------------


def _check_payments(
    report: ReconciliationReport, *, since: datetime | None, settled: datetime, size: int
) -> None:
    for page in _pages(payment_service_client, PAYMENTS_AUDIT_PATH, size, since=since, until=settled):
        report.checked["payments"] += len(page)
        known = _known_orders(payment["order_id"] for payment in page)
        for payment in page:
            if payment["order_id"] not in known:
                report.add(ViolationKind.PAYMENT_WITHOUT_ORDER, f"payment {payment['id']}")
            if not _ledger_matches(payment):
                report.add(ViolationKind.PAYMENT_LEDGER_MISMATCH, f"payment {payment['id']}")


def _ledger_matches(payment: Mapping[str, Any]) -> bool:
    """A captured payment was debited once, a refunded one debited and paid back, a failed one neither."""
    amount, charged, refunded = (Decimal(payment[key]) for key in ("amount", "charged", "refunded"))
    expected = {
        "CAPTURED": (amount, ZERO),
        "REFUNDED": (amount, amount),
        "FAILED": (ZERO, ZERO),
    }.get(payment["status"])
    return expected == (charged, refunded)


def _check_reservations(
    report: ReconciliationReport, *, since: datetime | None, settled: datetime, size: int
) -> None:
    for page in _pages(product_service_client, RESERVATIONS_AUDIT_PATH, size, since=since, until=settled):
        report.checked["reservations"] += len(page)
        known = _known_orders(reservation["order_id"] for reservation in page)
        for reservation in page:
            if reservation["order_id"] not in known:
                report.add(ViolationKind.RESERVATION_WITHOUT_ORDER, f"reservation {reservation['id']}")


def _known_orders(order_ids: Iterator[str]) -> set[str]:
    numeric = {int(order_id) for order_id in order_ids if order_id.isdigit() and 0 < int(order_id) < 2**63}
    return {str(pk) for pk in Order.objects.filter(pk__in=numeric).values_list("pk", flat=True)}


# --- balances: wallets against their ledger, stock against its movements ---------


def _check_wallets(report: ReconciliationReport, *, size: int) -> None:
    for page in _pages(payment_service_client, WALLETS_AUDIT_PATH, size):
        report.checked["wallets"] += len(page)
        for wallet in page:
            if Decimal(wallet["balance"]) != Decimal(wallet["ledger"]):
                report.add(ViolationKind.WALLET_LEDGER_MISMATCH, f"wallet of user {wallet['user_id']}")


def _check_stock(report: ReconciliationReport, *, size: int) -> None:
    for page in _pages(product_service_client, STOCK_AUDIT_PATH, size):
        report.checked["products"] += len(page)
        for stock in page:
            expected = stock["adjusted"] - stock["held"] - stock["committed"]
            if not stock["quantity"] == stock["ledger"] == expected:
                report.add(ViolationKind.STOCK_LEDGER_MISMATCH, f"product {stock['product_id']}")


# --- paging through the other services' audit routes -------------------------------


def _pages(
    client: Callable[[], Any], path: str, size: int, **window: datetime | None
) -> Iterator[list[dict[str, Any]]]:
    after: int | None = 0
    params = {key: value.isoformat() for key, value in window.items() if value is not None}
    while after is not None:
        body = _get(client, path, {**params, "after": after, "limit": size})
        yield body["results"]
        after = body["next_after"]


def _fetch(
    client: Callable[[], Any], path: str, *, order_id: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    """The rows of these orders (at most one each, so `limit` rows always fit one answer)."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(order_id), ORDER_IDS_PER_LOOKUP):
        chunk = list(order_id[start : start + ORDER_IDS_PER_LOOKUP])
        results.extend(_get(client, path, {"order_id": chunk, "limit": limit})["results"])
    return results


def _by_order(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row["order_id"]): row for row in rows}


def _get(client: Callable[[], Any], path: str, params: dict[str, Any]) -> dict[str, Any]:
    response: UpstreamResponse = client().get(path, params=params)
    if response.status_code != 200:
        raise UpstreamError(
            ErrorCode.UNAVAILABLE, f"{path} answered HTTP {response.status_code}: {response.text[:300]}"
        )
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise UpstreamError(
            ErrorCode.UNAVAILABLE, f"{path} answered with an unexpected body", status_code=502
        )
    return body
