"""Trust between services on the running platform: who may write which topic, and
which service token opens which internal route.

The scenario of the issue: an order is CONFIRMED and paid; then somebody who can
reach the broker writes `order.cancelled` for it. Without credentials, or with
another service's principal, the broker refuses the message; with a principal
that may write (here the admin, standing for a leaked credential) but an
envelope that does not come from order_service, payment_service's consumer
dead-letters it. In every case no money moves and the order stays CONFIRMED.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from platform_client import GATEWAY_URL, REPO_ROOT, Customer, Platform, close_account, wait_for

ORDER_CANCELLED = "orders.order-cancelled"
PRICE = Decimal("12.50")
# The devstack's ports (moved with the same variables as the devstack itself).
USER_SERVICE_URL = f"http://127.0.0.1:{os.environ.get('COMPTOIR_USER_SERVICE_PORT', '8001')}"
PAYMENT_SERVICE_URL = f"http://127.0.0.1:{os.environ.get('COMPTOIR_PAYMENT_SERVICE_PORT', '8004')}"
KAFKA = f"127.0.0.1:{os.environ.get('COMPTOIR_KAFKA_PORT', '9092')}"


def checkout_secret(name: str) -> str:
    """A secret the devstack drew for this checkout (what the platform's processes were given)."""
    state = Path(os.environ.get("COMPTOIR_DEVSTACK_DIR", str(REPO_ROOT / ".devstack")))
    secrets: dict[str, str] = json.loads((state / "secrets.json").read_text())
    return secrets[name]


def kafka(principal: str | None, **extra: Any) -> dict[str, Any]:
    """A client config: a service's principal, the test run's own (admin), or none at all."""
    config: dict[str, Any] = {"bootstrap.servers": KAFKA, "log_level": 0}
    if principal == "admin":
        config.update(
            {
                "security.protocol": os.environ["KAFKA_SECURITY_PROTOCOL"],
                "sasl.mechanism": os.environ["KAFKA_SASL_MECHANISM"],
                "sasl.username": os.environ["KAFKA_SASL_USERNAME"],
                "sasl.password": os.environ["KAFKA_SASL_PASSWORD"],
            }
        )
    elif principal is not None:
        config.update(
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": principal,
                "sasl.password": checkout_secret(f"kafka.{principal}"),
            }
        )
    return {**config, **extra}


def forged_cancellation(order: dict[str, Any], customer: Customer, *, producer: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.cancelled",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": producer,
        "aggregate_id": str(order["id"]),
        "correlation_id": str(uuid.uuid4()),
        "saga_id": None,
        "traceparent": None,
        "payload": {"order_id": str(order["id"]), "user_id": str(customer.user_id), "reason": "system_error"},
    }


def write(config: dict[str, Any], envelope: dict[str, Any]) -> str | None:
    """Writes the envelope to orders.order-cancelled; the delivery error's name, None when written."""
    outcome: list[str | None] = []
    producer = Producer({**config, "enable.idempotence": True, "message.timeout.ms": 8000})
    producer.produce(
        ORDER_CANCELLED,
        key=envelope["aggregate_id"].encode(),
        value=json.dumps(envelope).encode(),
        headers=[("event_id", envelope["event_id"].encode()), ("producer", envelope["producer"].encode())],
        on_delivery=lambda error, _message: outcome.append(error.name() if error else None),
    )
    producer.flush(15)
    assert len(outcome) == 1
    return outcome[0]


# Each consumer of orders.order-cancelled has its own dead-letter topic of it.
CANCELLATION_DLQS = [
    f"{service}.{ORDER_CANCELLED}.dlq" for service in ("email_service", "payment_service", "product_service")
]


def dead_letters_of(event_id: str) -> list[dict[str, str]]:
    """Headers of the dead letters of orders.order-cancelled carrying this event id, every consumer's."""
    reader = Consumer(
        kafka("admin", **{"group.id": f"e2e.reader-{uuid.uuid4().hex}", "enable.partition.eof": True})
    )
    found: list[dict[str, str]] = []
    try:
        assigned = []
        for topic in CANCELLATION_DLQS:
            partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
            assigned += [TopicPartition(topic, p, 0) for p in partitions]
        reader.assign(assigned)
        pending = {(tp.topic, tp.partition) for tp in assigned}
        while pending:
            message = reader.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard((str(message.topic()), int(message.partition() or 0)))
                continue
            raw = message.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = {
                name: (value.encode() if isinstance(value, str) else value or b"").decode()
                for name, value in pairs
            }
            if json.loads(message.value() or b"{}").get("event_id") == event_id:
                found.append(headers)
        return found
    finally:
        reader.close()


def confirmed_order(platform: Platform) -> tuple[Customer, dict[str, Any]]:
    customer = platform.new_customer(balance=Decimal("100.00"))
    product = platform.new_product(stock=5, price=PRICE)
    placed = platform.place_order(customer, [(product, 2)])
    order = platform.wait_terminal(customer, placed["id"])
    # The platform's own traffic (relays, consumers, internal calls) runs under its principals.
    assert order["status"] == "CONFIRMED"
    assert platform.balance(customer) == Decimal("75.00")
    return customer, order


def assert_untouched(platform: Platform, customer: Customer, order: dict[str, Any]) -> None:
    assert platform.order(customer, order["id"])["status"] == "CONFIRMED"
    assert platform.balance(customer) == Decimal("75.00")
    assert [(p["status"], Decimal(p["amount"])) for p in platform.payments(customer)] == [
        ("CAPTURED", Decimal("25.00"))
    ]


def test_a_forged_order_cancelled_is_refused_by_the_broker_and_moves_no_money(platform: Platform) -> None:
    customer, order = confirmed_order(platform)

    assert (
        write(kafka(None), forged_cancellation(order, customer, producer="order_service")) == "_MSG_TIMED_OUT"
    )
    for principal in ("payment_service", "product_service", "email_service", "user_service"):
        forged = forged_cancellation(order, customer, producer="order_service")
        assert write(kafka(principal), forged) == "TOPIC_AUTHORIZATION_FAILED", principal

    assert_untouched(platform, customer, order)


def test_a_cancellation_not_from_order_service_is_dead_lettered_and_moves_no_money(
    platform: Platform,
) -> None:
    customer, order = confirmed_order(platform)
    forged = forged_cancellation(order, customer, producer="payment_service")

    assert write(kafka("admin"), forged) is None

    letters = wait_for(
        lambda: (lambda found: found if len(found) >= 3 else None)(dead_letters_of(forged["event_id"])),
        timeout_s=60,
        what="the forged order.cancelled in the dead letters of its three consumers",
    )
    assert sorted(letter["x-consumer-group"] for letter in letters) == [
        "email_service.events",
        "payment_service.events",
        "product_service.events",
    ]
    for letter in letters:
        assert letter["x-error-type"] == "comptoir.events._contracts.ForeignProducerError"
        assert letter["x-error-message"] == (
            "order.cancelled: only order_service produces this event type (contracts/events/catalog.json), "
            "but the envelope names producer 'payment_service'"
        )
    assert_untouched(platform, customer, order)
    mails = [m for m in platform.mails_to(customer.email) if str(m["object_id"]) == str(order["id"])]
    assert [m["template"] for m in mails] == ["order_confirmed"]


def service_token(client: str) -> str:
    response = httpx.post(
        f"{USER_SERVICE_URL}/internal/users/auth/service-token/",
        json={"client_id": client, "client_secret": checkout_secret(f"service-client.{client}")},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_a_service_token_opens_only_the_routes_of_its_scopes(platform: Platform) -> None:
    customer, order = confirmed_order(platform)
    refund = {"order_id": str(order["id"])}

    for client in ("email_service", "product_service"):
        response = httpx.post(
            f"{PAYMENT_SERVICE_URL}/internal/payments/refund/",
            json=refund,
            headers={"Authorization": f"Bearer {service_token(client)}"},
            timeout=10,
        )
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "insufficient_scope"
        assert response.json()["error"]["details"]["required_scope"] == "payments:refund"

    assert_untouched(platform, customer, order)


def test_the_token_endpoint_is_not_reachable_through_the_gateway(platform: Platform) -> None:
    credentials = {
        "client_id": "order_service",
        "client_secret": checkout_secret("service-client.order_service"),
    }
    for path in ("/api/users/auth/service-token/", "/internal/users/auth/service-token/"):
        # Not public: without a user's token the gateway stops it; with one, nothing is there.
        anonymous = platform.http.post(path, json=credentials)
        signed_in = platform.http.post(path, json=credentials, headers=platform.staff)
        assert (anonymous.status_code, signed_in.status_code) in [(401, 404), (404, 404)], path
        assert "access_token" not in anonymous.text + signed_in.text

    documented = platform.check(platform.http.get("/openapi.json"), 200)
    assert not [path for path in documented["paths"] if "service-token" in path]
    assert not [path for path in documented["paths"] if path.startswith("/internal/")]


# --- the gateway under hostile clients ------------------------------------------------

# user_service's web process: 1 gunicorn worker of 8 threads (its Procfile).
SLOW_CLIENTS = 8 + 4


def test_logout_revokes_the_access_token_at_once(platform: Platform) -> None:
    customer = platform.new_customer(balance=Decimal("0"))
    pair = platform.check(
        platform.http.post(
            "/api/users/auth/login/", json={"email": customer.email, "password": customer.password}
        ),
        200,
    )
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    assert platform.http.get("/api/users/me/", headers=bearer).status_code == 200
    kept = customer.headers  # the access token of another login session

    # The gateway routes a logout only with the session's access token (not a public route).
    logout = platform.http.post("/api/users/auth/logout/", json={"refresh": pair["refresh"]}, headers=bearer)
    platform.check(logout, 204)

    # Refused on the very next requests (every gateway worker), not at the token's expiry.
    answers = [platform.http.get("/api/users/me/", headers=bearer) for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 6, answers[0].text
    assert answers[0].json()["error"]["code"] == "authentication_failed"
    assert platform.http.get("/api/users/me/", headers=kept).status_code == 200


def test_deactivating_an_account_revokes_its_tokens_at_once(platform: Platform) -> None:
    customer = platform.new_customer(balance=Decimal("0"))
    assert platform.http.get("/api/users/me/", headers=customer.headers).status_code == 200

    close_account(customer.user_id)

    answers = [platform.http.get("/api/users/me/", headers=customer.headers) for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 6


def test_a_client_trickling_bodies_holds_no_service_worker(platform: Platform) -> None:
    """More slow uploads than user_service has workers, while other clients log in."""
    customer = platform.new_customer(balance=Decimal("0"))
    body = json.dumps({"full_name": "x" * 100_000}).encode()
    address = httpx.URL(GATEWAY_URL)
    head = (
        f"PATCH /api/users/me/ HTTP/1.1\r\nHost: {address.host}\r\nAuthorization: Bearer {customer.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    trickling = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection((address.host, address.port or 80), timeout=30)
            sock.sendall(head + body[:1000])  # and nothing more for now
            trickling.append(sock)

        logins = [platform.login(customer.email, customer.password) for _ in range(3)]
        # ...answered while every slow upload is still waiting for its answer (the gateway
        # holds them until its body deadline), not after user_service's workers were freed.
        unanswered = 0
        for sock in trickling:
            sock.setblocking(False)
            try:
                sock.recv(1)
            except BlockingIOError:
                unanswered += 1
    finally:
        for sock in trickling:
            sock.close()
    assert all(logins)
    assert unanswered == SLOW_CLIENTS
