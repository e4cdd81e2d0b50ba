"""A compensation that finds nothing to undo leaves a tombstone, on the real
services: a charge or a reservation that lands after the saga refunded and
released the order (one still in flight when the saga gave up on it) is
refused, and no money or stock moves."""

from __future__ import annotations

from decimal import Decimal

from platform_client import Platform, django_shell

PRICE = Decimal("12.50")

# Run in order_service's own process environment: the saga's calls, as its tasks make them.
LATE_CALLS = """
from decimal import Decimal
from orders.product_quotes import RequestedLine
from orders.upstream import (
    StepRefused, payment_charge, payment_refund, stock_release, stock_reserve
)

payment_refund(order_id={order_id})
stock_release(order_id={order_id})
late = {{
    "charge": lambda: payment_charge(
        order_id={order_id}, user_id={user_id}, amount=Decimal("{amount}"), currency="EUR"
    ),
    "reserve": lambda: stock_reserve(
        order_id={order_id}, lines=[RequestedLine({product_id}, 1)], currency="EUR"
    ),
}}
for name, call in late.items():
    try:
        call()
    except StepRefused as refused:
        print(name, "REFUSED", refused.reason, refused)
    else:
        print(name, "ACCEPTED")
"""


def test_a_charge_and_a_reservation_landing_after_the_compensations_are_refused(
    platform: Platform, saga_mode: str
) -> None:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=1, price=PRICE)
    placed = platform.place_order(customer, [(product, 2)])
    order = platform.wait_terminal(customer, placed["id"])
    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "insufficient_stock")

    output = django_shell(
        "order_service",
        LATE_CALLS.format(order_id=order["id"], user_id=customer.user_id, amount=PRICE, product_id=product),
    )

    # The shell's output also carries the process's log lines.
    answers = [line for line in output.splitlines() if line.startswith(("charge ", "reserve "))]
    assert answers == [
        "charge REFUSED system_error payment_service: the order was compensated before this step "
        "(order_compensated)",
        "reserve REFUSED system_error product_service: the order was compensated before this step "
        "(order_compensated)",
    ]
    assert platform.balance(customer) == Decimal("100.00")
    assert platform.payments(customer) == []
    assert platform.stock(product) == 1
