"""The order saga end to end, through the gateway, on real processes: the same
scenarios in both modes must reach the same terminal states."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
from platform_client import (
    Customer,
    Platform,
    close_account,
    deactivate_user,
    devstack,
    kill_hard,
    processes_of,
    wait_for,
)

from comptoir.ports import local_url

PRICE = Decimal("12.50")
OUTAGE_S = float(os.environ.get("E2E_OUTAGE_S", "30"))


def _one_mail(platform: Platform, customer: Customer, order_id: int, template: str) -> dict[str, Any]:
    """Waits for the order's mail to be sent, then checks it is the only one for that order."""

    def sent() -> dict[str, Any] | None:
        for mail in platform.mails_to(customer.email):
            if str(mail["object_id"]) == str(order_id) and mail["status"] == "SENT":
                return mail
        return None

    mail = wait_for(sent, timeout_s=60, what=f"the {template} mail of order {order_id}")
    about_order = [m for m in platform.mails_to(customer.email) if str(m["object_id"]) == str(order_id)]
    assert [m["template"] for m in about_order] == [template]
    return mail


def _captured(platform: Platform, customer: Customer) -> list[dict[str, Any]]:
    return [p for p in platform.payments(customer) if p["status"] == "CAPTURED"]


def test_happy_path_confirms_decrements_stock_debits_wallet_and_mails_once(
    platform: Platform, saga_mode: str
) -> None:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=PRICE)

    placed = platform.place_order(customer, [(product, 2)])
    assert placed["status"] == "PENDING"
    assert placed["saga_mode"] == saga_mode
    order = platform.wait_terminal(customer, placed["id"])

    assert order["status"] == "CONFIRMED"
    assert order["cancel_reason"] in (None, "")
    assert Decimal(order["total"]) == Decimal("25.00")
    assert platform.stock(product) == 3
    assert platform.balance(customer) == Decimal("75.00")
    [payment] = _captured(platform, customer)
    assert (str(payment["order_id"]), Decimal(payment["amount"])) == (str(placed["id"]), Decimal("25.00"))
    assert order["timeline"], "the saga timeline is empty"
    _one_mail(platform, customer, placed["id"], "order_confirmed")


def test_out_of_stock_cancels_without_charging(platform: Platform, saga_mode: str) -> None:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=1, price=PRICE)

    placed = platform.place_order(customer, [(product, 2)])
    order = platform.wait_terminal(customer, placed["id"])

    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "insufficient_stock")
    assert platform.stock(product) == 1
    assert platform.balance(customer) == Decimal("100.00")
    assert platform.payments(customer) == []
    _one_mail(platform, customer, placed["id"], "order_cancelled")


def test_an_order_placed_at_a_kept_price_that_changed_is_cancelled_without_charging(
    platform: Platform, saga_mode: str
) -> None:
    """order_service keeps quoted prices (ORDER_PRICE_CACHE_S); the reservation
    checks them, so an order placed at a price changed since is never confirmed."""
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=PRICE)
    first = platform.place_order(customer, [(product, 1)])  # quoted: its prices are kept
    assert platform.wait_terminal(customer, first["id"])["status"] == "CONFIRMED"
    platform.check(
        platform.http.patch(f"/api/products/{product}/", json={"price": "14.00"}, headers=platform.staff), 200
    )

    placed = platform.place_order(customer, [(product, 1)])
    order = platform.wait_terminal(customer, placed["id"])

    assert Decimal(placed["total"]) == PRICE  # the kept price (the devstack's web process is one)
    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "price_changed")
    assert platform.stock(product) == 4
    assert platform.balance(customer) == Decimal("100.00") - PRICE
    assert [str(p["order_id"]) for p in _captured(platform, customer)] == [str(first["id"])]
    _one_mail(platform, customer, placed["id"], "order_cancelled")


def test_insufficient_funds_cancels_and_releases_stock(platform: Platform, saga_mode: str) -> None:
    customer = platform.new_customer(balance=Decimal("10.00"))
    product = platform.new_product(stock=4, price=PRICE)

    placed = platform.place_order(customer, [(product, 1)])
    order = platform.wait_terminal(customer, placed["id"])

    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "insufficient_funds")
    # In choreography the release follows the cancellation (order.cancelled → product_service).
    wait_for(lambda: platform.stock(product) == 4, timeout_s=30, what="the reserved unit to be released")
    assert platform.balance(customer) == Decimal("10.00")
    assert _captured(platform, customer) == []
    _one_mail(platform, customer, placed["id"], "order_cancelled")


def test_inactive_user_is_cancelled_with_nothing_reserved_or_charged(
    platform: Platform, saga_mode: str
) -> None:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=3, price=PRICE)
    deactivate_user(customer.user_id)  # the flag only: the token still passes the gateway

    placed = platform.place_order(customer, [(product, 1)])
    order = platform.wait_terminal(customer, placed["id"])

    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "user_inactive")
    assert platform.stock(product) == 3
    assert platform.balance(customer) == Decimal("100.00")
    assert platform.payments(customer) == []


def test_a_closed_account_places_no_more_orders_though_order_service_kept_its_customer(
    platform: Platform, saga_mode: str
) -> None:
    customer = platform.new_customer(balance=Decimal("1000.00"))
    product = platform.new_product(stock=50, price=PRICE)
    first = platform.wait_terminal(customer, platform.place_order(customer, [(product, 1)])["id"])
    assert first["status"] == "CONFIRMED"  # user_service found the user active: kept for 30 s

    close_account(customer.user_id)  # user_deactivate: publishes user.deactivated
    refused_at_gateway = platform.http.post(
        "/api/orders/", json={"lines": [{"product_id": product, "quantity": 1}]}, headers=customer.headers
    )
    assert refused_at_gateway.status_code == 401

    # Straight to order_service with the token still unexpired (a request already past
    # the gateway): refused well within the 30 s the customer would have been kept, so
    # it is user.deactivated that made order_service ask user_service again.
    direct = httpx.Client(base_url=local_url("order_service"), headers=customer.headers, timeout=10)

    def direct_order_refused() -> dict[str, Any] | None:
        placed = direct.post("/api/orders/", json={"lines": [{"product_id": product, "quantity": 1}]})
        assert placed.status_code == 202, placed.text

        def terminal() -> dict[str, Any] | None:
            order: dict[str, Any] = direct.get(f"/api/orders/{placed.json()['id']}/").json()
            return order if order["status"] in {"CONFIRMED", "CANCELLED"} else None

        order = wait_for(terminal, timeout_s=30, what="the direct order to finish")
        return order if order["status"] == "CANCELLED" else None

    with direct:
        order = wait_for(
            direct_order_refused, timeout_s=10, what="order_service to refuse the closed account"
        )
    assert order["cancel_reason"] == "user_inactive"


def test_same_idempotency_key_makes_one_order(platform: Platform, saga_mode: str) -> None:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=PRICE)
    key = f"e2e-{uuid.uuid4()}"

    first = platform.place_order(customer, [(product, 1)], idempotency_key=key)
    second = platform.place_order(customer, [(product, 1)], idempotency_key=key)

    assert first["id"] == second["id"]
    platform.wait_terminal(customer, first["id"])
    assert [o["id"] for o in platform.orders_of(customer)] == [first["id"]]
    assert platform.stock(product) == 4
    assert len(_captured(platform, customer)) == 1


def test_payment_service_down_for_a_while_then_back_completes_with_one_charge(
    platform: Platform, saga_mode: str
) -> None:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=PRICE)
    payment_processes = processes_of("payment_service")
    for name in payment_processes:
        devstack("stop", name)
    try:
        placed = platform.place_order(customer, [(product, 1)])
        time.sleep(OUTAGE_S)  # the outage itself is the scenario
        assert platform.order(customer, placed["id"])["status"] == "PENDING"
    finally:
        for name in payment_processes:
            devstack("start", name)

    order = platform.wait_terminal(customer, placed["id"], timeout_s=180)
    assert order["status"] == "CONFIRMED"
    assert platform.balance(customer) == Decimal("87.50")
    assert len(_captured(platform, customer)) == 1
    assert platform.stock(product) == 4


def test_fifty_orders_for_ten_units_confirm_exactly_ten_and_conserve_money(
    platform: Platform, saga_mode: str
) -> None:
    customers = [platform.new_customer(balance=Decimal("200.00")) for _ in range(5)]
    product = platform.new_product(stock=10, price=PRICE)
    initial = sum((platform.balance(c) for c in customers), Decimal())

    def place(index: int) -> tuple[Customer, int]:
        customer = customers[index % len(customers)]
        return customer, int(platform.place_order(customer, [(product, 1)])["id"])

    with ThreadPoolExecutor(max_workers=10) as pool:
        placed = list(pool.map(place, range(50)))
    finals = [platform.wait_terminal(c, order_id, timeout_s=180) for c, order_id in placed]

    outcomes = Counter((o["status"], o["cancel_reason"] or "") for o in finals)
    assert outcomes == {("CONFIRMED", ""): 10, ("CANCELLED", "insufficient_stock"): 40}
    assert platform.stock(product) == 0
    captured = [p for c in customers for p in _captured(platform, c)]
    assert len(captured) == 10
    assert len({p["order_id"] for p in captured}) == 10
    wallets = sum((platform.balance(c) for c in customers), Decimal())
    assert wallets + sum((Decimal(p["amount"]) for p in captured), Decimal()) == initial


def test_killed_worker_or_consumer_leaves_no_order_behind_and_nothing_doubled(
    platform: Platform, saga_mode: str
) -> None:
    customers = [platform.new_customer(balance=Decimal("100.00")) for _ in range(4)]
    product = platform.new_product(stock=100, price=PRICE)
    victims = (
        ["order_service.worker"]
        if saga_mode == "orchestration"
        else ["order_service.consumer", "product_service.consumer", "payment_service.consumer"]
    )

    placed: list[tuple[Customer, int]] = []
    for index in range(20):
        customer = customers[index % len(customers)]
        placed.append((customer, int(platform.place_order(customer, [(product, 1)])["id"])))
        if index == 6:
            for name in victims:
                kill_hard(name)
    for name in victims:
        devstack("start", name)

    finals = [platform.wait_terminal(c, order_id, timeout_s=180) for c, order_id in placed]
    assert Counter(o["status"] for o in finals) == {"CONFIRMED": 20}
    assert platform.stock(product) == 80
    for customer in customers:
        assert len(_captured(platform, customer)) == 5
        assert platform.balance(customer) == Decimal("100.00") - 5 * PRICE
    for customer, order_id in placed:
        _one_mail(platform, customer, order_id, "order_confirmed")
