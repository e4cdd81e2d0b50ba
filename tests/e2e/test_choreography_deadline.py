"""The choreography's deadline on real processes and real Kafka: an order whose
charge never happens (payment_service's consumer down, as when its event sits in
a dead-letter topic) is cancelled by order_service's beat once
CHOREOGRAPHY_DEADLINE_S has passed; product_service releases the stock on
order.cancelled, and when the stuck stock.reserved is finally handled it takes
no money for good (charged then refunded, or refused by the tombstone)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from platform_client import Platform, devstack, django_shell, processes_of, wait_for

PRICE = Decimal("12.50")
DEADLINE_S = "15"
PAYMENT_CONSUMER = "payment_service.consumer"

HANDLED = """
import json
from comptoir.events import InboxMessage
print(json.dumps(sorted(InboxMessage.objects.filter(
    consumer="payment_service.events", event_id__in={event_ids!r}
).values_list("event_type", flat=True))))
"""
EVENT_IDS = """
import json
from comptoir.events import OutboxMessage
print(json.dumps([str(e) for e in OutboxMessage.objects.filter(
    key="{order_id}", event_type__in=("{event_type}",)
).values_list("event_id", flat=True)]))
"""


def _last_json_line(output: str) -> str:
    """The printed answer: the last line that is a JSON list (log lines are JSON objects)."""
    return [line for line in output.splitlines() if line.startswith("[")][-1]


def _event_ids(service: str, order_id: int, event_type: str) -> list[str]:
    ids: list[str] = json.loads(
        _last_json_line(django_shell(service, EVENT_IDS.format(order_id=order_id, event_type=event_type)))
    )
    return ids


def _restart_order_service(env: dict[str, str]) -> None:
    for name in processes_of("order_service"):
        devstack("restart", name, env=env)


# Choreography's own deadline (an orchestrated saga gives up step by step instead).
@pytest.mark.parametrize("saga_mode", ["choreography"], indirect=True)
def test_a_choreographed_order_stuck_past_its_deadline_is_cancelled_and_compensated(
    platform: Platform, saga_mode: str
) -> None:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=3, price=PRICE)
    _restart_order_service({"SAGA_MODE": "choreography", "CHOREOGRAPHY_DEADLINE_S": DEADLINE_S})
    devstack("stop", PAYMENT_CONSUMER)
    try:
        placed = platform.place_order(customer, [(product, 2)])
        wait_for(lambda: platform.stock(product) == 1, timeout_s=60, what="the stock to be held")

        order = platform.wait_terminal(customer, placed["id"], timeout_s=120)

        assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "system_error")
        assert ("charge_payment", "failed", "system_error") in [
            (entry["step"], entry["status"], entry["error"]) for entry in order["timeline"]
        ]
        # product_service compensates on order.cancelled.
        wait_for(lambda: platform.stock(product) == 3, timeout_s=60, what="the held stock to be released")
    finally:
        devstack("start", PAYMENT_CONSUMER)
        _restart_order_service({"SAGA_MODE": "choreography"})

    # The stuck stock.reserved is handled now, and so is order.cancelled.
    stuck = _event_ids("product_service", placed["id"], "stock.reserved")
    cancelled = _event_ids("order_service", placed["id"], "order.cancelled")
    assert (len(stuck), len(cancelled)) == (1, 1)

    def both_handled() -> bool:
        output = django_shell("payment_service", HANDLED.format(event_ids=stuck + cancelled))
        return bool(json.loads(_last_json_line(output)) == ["order.cancelled", "stock.reserved"])

    wait_for(both_handled, timeout_s=120, what="payment_service to handle the stuck events", interval_s=2)
    assert [p for p in platform.payments(customer) if p["status"] == "CAPTURED"] == []
    assert platform.balance(customer) == Decimal("100.00")
    assert platform.stock(product) == 3
    assert platform.order(customer, placed["id"])["status"] == "CANCELLED"
