"""Poison messages written to a topic the platform consumes, under load: what is not
JSON or breaks its schema goes to each consuming group's dead-letter topic at once,
an event type nobody handles is skipped, and consumption goes on (lag back to 0).
Then a real failure parked in the DLQ (email_service could not ask user_service for
the address while it was down: the cancellation of an order whose user could not
order carries no address, unlike the events of a verified customer) is replayed
with `manage.py dlq replay` after the fix: the mail goes out exactly once, even
when the same dead letter is replayed twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from harness import Devstack, Supervisor, _kafka_config, consumer_lag, log
from platform_client import REPO_ROOT, Customer, Platform, deactivate_user, wait_for
from test_faults import assert_recovered, drive, new_chaos

TOPIC = "orders.order-confirmed"
CANCELLED_TOPIC = "orders.order-cancelled"
GROUPS = ("email_service", "product_service")  # the catalogue's consumers of order.confirmed


def envelope(event_type: str, payload: dict[str, Any], key: str) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "order_service",
            "aggregate_id": key,
            "correlation_id": None,
            "saga_id": None,
            "traceparent": None,
            "payload": payload,
        }
    ).encode()


def produce(messages: list[tuple[str, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({**_kafka_config(), "acks": "all", "enable.idempotence": True})
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value in messages:
        producer.produce(TOPIC, key=key.encode(), value=value, on_delivery=delivered)
    assert producer.flush(30) == 0, "poison messages not acknowledged"
    assert not failures, failures


def dlq(service: str, *args: str, admin: bool = False) -> str:
    """`manage.py dlq ARGS` of a service: as the service's own Kafka principal
    (`devstack manage`; a replay goes to its own retry topic, which it may write),
    or as the admin principal of the test run."""
    command = ["manage.py"] if admin else ["-m", "devstack", "manage", service]
    result = subprocess.run(
        [sys.executable, *command, "dlq", *args],
        cwd=REPO_ROOT / "services" / service if admin else REPO_ROOT,
        check=False,
        timeout=180,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{service} dlq {args}: {result.stdout}{result.stderr}"
    return result.stdout


def letters(service: str, topic: str = TOPIC) -> list[list[str]]:
    """`dlq list` of a topic, one list of fields per dead letter (id, when, type, key, group, ...)."""
    output = dlq(service, "list", "--topic", topic)
    return [line.split("\t") for line in output.splitlines() if "\t" in line]


def cancelled_mails(platform: Platform, customer: Customer, order_id: int) -> list[dict[str, Any]]:
    return [
        mail
        for mail in platform.mails_to(customer.email)
        if str(mail["object_id"]) == str(order_id) and mail["template"] == "order_cancelled"
    ]


def lag_is_zero() -> bool:
    return all(lag == 0 for lag in consumer_lag().values())


@pytest.mark.fast
def test_poison_messages_then_a_dead_letter_replayed_after_the_fix(
    platform: Platform, devstack: Devstack, supervisor: Supervisor
) -> None:
    chaos = new_chaos("poison messages + dlq replay", platform, devstack, supervisor)
    load = chaos.load(count=10, duration_s=15, workers=2)
    keys = {
        kind: f"chaos-poison-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("not-json", "invalid", "unknown")
    }

    def poison() -> None:
        produce(
            [
                (keys["not-json"], b"\x00{not json at all"),
                (keys["invalid"], envelope("order.confirmed", {"order_id": "no-such"}, keys["invalid"])),
                (keys["unknown"], envelope("order.exploded", {"order_id": "1"}, keys["unknown"])),
            ]
        )

    def fault() -> None:
        poison()

        # Each consuming group dead-letters the two broken ones at once, skips the unknown type.
        def all_parked() -> bool:
            for service in GROUPS:
                found = {fields[3] for fields in letters(service)}
                if not {keys["not-json"], keys["invalid"]} <= found:
                    return False
            return True

        wait_for(all_parked, timeout_s=120, interval_s=3, what="the poison messages in every group's DLQ")
        for service in GROUPS:
            assert keys["unknown"] not in {fields[3] for fields in letters(service)}, (
                f"{service} dead-lettered an event type it does not handle"
            )

    # The fault runs during the load; the recovery check comes after the replay below.
    drive(chaos, load, fault)

    # A real failure: the mail of an order cancelled because its user could not order (the
    # account was closed as the order went out: its event carries no address) while
    # user_service, the address book, is down.
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=Decimal("12.50"))
    deactivate_user(customer.user_id)  # the flag only: the token still passes the gateway
    with supervisor.holding("email_service.consumer", "user_service.web"):
        devstack.stop("email_service.consumer")
        placed = platform.place_order(customer, [(product, 1)])
        cancelled = platform.wait_terminal(customer, placed["id"], timeout_s=180)
        assert (cancelled["status"], cancelled["cancel_reason"]) == ("CANCELLED", "user_inactive")
        order_id = int(placed["id"])
        devstack.stop("user_service.web")
        devstack.overrides["email_service.consumer"] = {"COMPTOIR_EVENT_RETRY_DELAYS": "0.5,0.5"}
        try:
            assert devstack.start("email_service.consumer")

            def parked() -> list[str] | None:
                for fields in letters("email_service", CANCELLED_TOPIC):
                    if fields[2] == "order.cancelled" and fields[3] == str(order_id):
                        return fields
                return None

            letter = wait_for(
                parked, timeout_s=120, interval_s=3, what=f"order {order_id}'s event in the DLQ"
            )
            log(f"{chaos.name}: parked {letter[0]} after {letter[5]}")
        finally:
            devstack.overrides.pop("email_service.consumer", None)
            devstack.stop("email_service.consumer")
            # The fix: user_service answers again.
            assert devstack.start("user_service.web")
            assert devstack.start("email_service.consumer")
    assert cancelled_mails(platform, customer, order_id) == []

    # Read by id as the service itself (its reader's throwaway group is not one its ACLs grant).
    assert f"key: {order_id}" in dlq("email_service", "show", letter[0])
    dlq("email_service", "replay", letter[0])
    wait_for(
        lambda: [m for m in cancelled_mails(platform, customer, order_id) if m["status"] == "SENT"] or None,
        timeout_s=120,
        what=f"the mail of order {order_id} after the replay",
    )
    # Replayed again (an operator's double click): the inbox keeps it to one mail.
    # Read by id as the service itself (its reader's throwaway group is not one its ACLs grant).
    assert f"key: {order_id}" in dlq("email_service", "show", letter[0])
    dlq("email_service", "replay", letter[0])
    wait_for(lag_is_zero, timeout_s=120, interval_s=2, what="the second replay to be consumed")
    assert len(cancelled_mails(platform, customer, order_id)) == 1

    # Two broken messages in each group, plus the parked letter (replay copies, it does not delete).
    chaos.expected_dead_letters = 2 * len(GROUPS) + 1
    assert_recovered(chaos.recover(load, healed_at=time.monotonic()))
