"""The broker's ACLs from the event catalogue: the rules, then what they allow on the real broker.

The broker of the test run authenticates (SASL/SCRAM) and denies what no ACL
allows. Each test of the second part makes principals of its own, one per
service of the repository's catalogue, gives them the catalogue's ACLs on
topics of its own (the catalogue's, renamed), and checks what they may do.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
)
from django.conf import settings

from comptoir import kafka_client_config
from comptoir._kafka_acls import (
    AclRule,
    apply_acls,
    catalog_acls,
    current_acls,
    load_catalog,
    upsert_scram_users,
)

REPO_CATALOG = Path(__file__).resolve().parents[3] / "contracts" / "events" / "catalog.json"
TIMEOUT_S = 30.0


def test_a_service_gets_exactly_its_topics_and_groups() -> None:
    rules = [
        rule for rule in catalog_acls(load_catalog(REPO_CATALOG)) if rule.principal == "User:payment_service"
    ]
    assert {tuple(str(rule).split()) for rule in rules} == {
        ("User:payment_service", "READ", "group", "payment_service.*"),
        ("User:payment_service", "READ", "topic", "orders.order-cancelled"),
        ("User:payment_service", "WRITE", "topic", "payments.payment-failed"),
        ("User:payment_service", "WRITE", "topic", "payments.payment-refunded"),
        ("User:payment_service", "WRITE", "topic", "payments.payment-succeeded"),
        ("User:payment_service", "READ", "topic", "stock.stock-reserved"),
        # Its own retry and dead-letter topics: payment_service.<topic>.retry.<n>, .dlq
        ("User:payment_service", "READ", "topic", "payment_service.*"),
        ("User:payment_service", "WRITE", "topic", "payment_service.*"),
        # ... and purges its own dead letters there.
        ("User:payment_service", "DELETE", "topic", "payment_service.*"),
    }
    assert len(rules) == 9


def test_only_the_owner_of_an_event_type_may_write_its_topic() -> None:
    rules = catalog_acls(load_catalog(REPO_CATALOG))
    writers = {
        rule.name: sorted(r.principal for r in rules if r.name == rule.name and r.operation == "WRITE")
        for rule in rules
        if rule.resource == "topic" and rule.pattern == "literal" and not rule.name.endswith(".dlq")
    }
    assert writers == {
        "orders.order-cancelled": ["User:order_service"],
        "orders.order-confirmed": ["User:order_service"],
        "orders.order-created": ["User:order_service"],
        "payments.payment-failed": ["User:payment_service"],
        "payments.payment-refunded": ["User:payment_service"],
        "payments.payment-succeeded": ["User:payment_service"],
        "stock.stock-rejected": ["User:product_service"],
        "stock.stock-released": ["User:product_service"],
        "stock.stock-reserved": ["User:product_service"],
        "users.user-deactivated": ["User:user_service"],
        "users.user-registered": ["User:user_service"],
    }
    assert {rule.operation for rule in rules} == {"READ", "WRITE", "DELETE"}  # no CREATE, ALTER...
    # DELETE only on a service's own failure topics (purging its dead letters).
    assert all(
        rule.pattern == "prefixed" and rule.name == rule.principal.removeprefix("User:") + "."
        for rule in rules
        if rule.operation == "DELETE"
    )


# ------------------------------------------------------------ on the real broker


@dataclass
class Realm:
    """Principals and topics of one test, named after the catalogue's."""

    suffix: str
    catalog: dict[str, dict[str, Any]]
    passwords: dict[str, str]

    def principal(self, service: str) -> str:
        return f"acl-{self.suffix}-{service}"

    def topic(self, event_type: str) -> str:
        return str(self.catalog[event_type]["topic"])

    def config(self, service: str | None, **extra: Any) -> dict[str, Any]:
        """A client of `service`'s principal (None: no credentials at all)."""
        config: dict[str, Any] = {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "log_level": 0}
        if service is not None:
            config.update(
                {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": self.principal(service),
                    "sasl.password": self.passwords[service],
                }
            )
        return {**config, **extra}


def admin() -> AdminClient:
    return AdminClient(kafka_client_config(log_level=0))


@pytest.fixture
def realm() -> Iterator[Realm]:
    suffix = uuid.uuid4().hex[:8]
    catalog = copy.deepcopy(load_catalog(REPO_CATALOG))
    for entry in catalog.values():
        entry["topic"] = f"test.acl-{suffix}.{entry['topic']}"
    services = sorted({str(e["producer"]) for e in catalog.values()})
    realm = Realm(suffix, catalog, {service: uuid.uuid4().hex * 2 for service in services})
    client = admin()
    upsert_scram_users(client, {realm.principal(s): password for s, password in realm.passwords.items()})
    topics = [entry["topic"] for entry in catalog.values()] + [
        name
        for entry in catalog.values()
        for consumer in entry["consumers"]
        for name in (f"{consumer}.{entry['topic']}.retry.1", f"{consumer}.{entry['topic']}.dlq")
    ]
    for future in client.create_topics([NewTopic(name, 1, 1) for name in topics]).values():
        future.result(timeout=TIMEOUT_S)
    apply_acls(client, catalog_acls(catalog, principal_of=lambda service: f"User:{realm.principal(service)}"))
    yield realm
    for service in services:
        wanted = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]
            ResourcePatternType.ANY,
            f"User:{realm.principal(service)}",
            None,  # type: ignore[arg-type]
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        for future in client.delete_acls([wanted], request_timeout=TIMEOUT_S).values():
            future.result(timeout=TIMEOUT_S)
    deletions = [
        UserScramCredentialDeletion(realm.principal(service), ScramMechanism.SCRAM_SHA_512)
        for service in services
    ]
    for future in client.alter_user_scram_credentials(deletions, request_timeout=TIMEOUT_S).values():  # type: ignore[arg-type]
        future.result(timeout=TIMEOUT_S)
    for future in client.delete_topics(topics, operation_timeout=TIMEOUT_S).values():
        future.result(timeout=TIMEOUT_S)


def produce(config: dict[str, Any], topic: str, value: bytes = b"{}") -> tuple[str | None, list[str]]:
    """Writes one message; returns its delivery error code (None: written) and the client's errors."""
    errors: list[str] = []
    outcome: list[str | None] = []
    producer = Producer(
        {
            **config,
            "enable.idempotence": True,
            "message.timeout.ms": 8000,
            "error_cb": lambda error: errors.append(error.name()),
        }
    )
    producer.produce(
        topic, value, on_delivery=lambda error, _msg: outcome.append(error.name() if error else None)
    )
    producer.flush(15)
    assert len(outcome) == 1
    return outcome[0], errors


def messages_in(topic: str) -> int:
    client = Consumer({**kafka_client_config(), "group.id": f"test.count-{uuid.uuid4().hex}", "log_level": 0})
    try:
        low, high = client.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
        return int(high - low)
    finally:
        client.close()


def consume_error(config: dict[str, Any], topic: str, group: str) -> str | None:
    """Subscribes as `group` and polls: the first error's name, None when a message arrives."""
    consumer = Consumer(
        {**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return None
            if error.code() != KafkaError._PARTITION_EOF:
                return str(error.name())
        raise AssertionError(f"neither a message nor an error from {topic} as {group}")
    finally:
        consumer.close()


def test_a_client_without_credentials_is_refused(realm: Realm) -> None:
    outcome, errors = produce(realm.config(None), realm.topic("order.cancelled"))

    assert outcome == "_MSG_TIMED_OUT"  # never accepted: the broker speaks SASL only
    assert errors  # the client was told (transport or authentication failures)
    assert messages_in(realm.topic("order.cancelled")) == 0


def test_a_wrong_password_is_refused(realm: Realm) -> None:
    config = {**realm.config("order_service"), "sasl.password": "not-the-password"}

    outcome, errors = produce(config, realm.topic("order.cancelled"))

    assert outcome == "_MSG_TIMED_OUT"
    assert "_AUTHENTICATION" in errors
    assert messages_in(realm.topic("order.cancelled")) == 0


def test_a_service_writes_its_own_topics_and_no_other_service_s(realm: Realm) -> None:
    order_cancelled = realm.topic("order.cancelled")

    assert produce(realm.config("payment_service"), order_cancelled)[0] == "TOPIC_AUTHORIZATION_FAILED"
    assert produce(realm.config("product_service"), order_cancelled)[0] == "TOPIC_AUTHORIZATION_FAILED"
    assert messages_in(order_cancelled) == 0

    assert produce(realm.config("order_service"), order_cancelled)[0] is None
    assert produce(realm.config("payment_service"), realm.topic("payment.succeeded"))[0] is None
    assert messages_in(order_cancelled) == 1


def test_a_consumer_writes_its_own_retry_and_dead_letter_topics_and_no_other_service_s(realm: Realm) -> None:
    consumed = realm.topic("order.cancelled")  # consumed by email, payment and product services

    assert produce(realm.config("payment_service"), f"payment_service.{consumed}.retry.1")[0] is None
    assert produce(realm.config("payment_service"), f"payment_service.{consumed}.dlq")[0] is None
    # A forged cancellation slipped into payment_service's retries by another consumer of
    # the same topic would be handled as a retry: the broker refuses it.
    for intruder in ("product_service", "order_service"):
        assert (
            produce(realm.config(intruder), f"payment_service.{consumed}.retry.1")[0]
            == "TOPIC_AUTHORIZATION_FAILED"
        ), intruder
    assert messages_in(f"payment_service.{consumed}.retry.1") == 1


def test_a_service_reads_what_it_consumes_with_its_own_groups_only(realm: Realm) -> None:
    stock_reserved = realm.topic("stock.reserved")
    assert produce(realm.config("product_service"), stock_reserved)[0] is None
    payment = realm.config("payment_service")

    assert consume_error(payment, stock_reserved, f"payment_service.test-{realm.suffix}") is None
    assert consume_error(payment, stock_reserved, f"order_service.test-{realm.suffix}") == (
        "GROUP_AUTHORIZATION_FAILED"
    )
    assert consume_error(payment, realm.topic("stock.rejected"), f"payment_service.other-{realm.suffix}") == (
        "TOPIC_AUTHORIZATION_FAILED"
    )


def test_a_service_may_not_create_topics(realm: Realm) -> None:
    client = AdminClient(realm.config("order_service"))
    name = f"test.acl-{realm.suffix}.created-by-a-service"

    (future,) = client.create_topics([NewTopic(name, 1, 1)]).values()

    with pytest.raises(Exception, match="AUTHORIZATION_FAILED"):
        future.result(timeout=TIMEOUT_S)
    assert name not in admin().list_topics(timeout=TIMEOUT_S).topics


def test_applying_again_creates_nothing_and_removes_rules_the_catalogue_no_longer_implies(
    realm: Realm,
) -> None:
    client = admin()
    principal = f"User:{realm.principal('email_service')}"
    rules = catalog_acls(realm.catalog, principal_of=lambda service: f"User:{realm.principal(service)}")
    stray = AclRule(principal, "topic", "literal", realm.topic("payment.succeeded"), "WRITE")
    for future in client.create_acls([stray.binding()]).values():
        future.result(timeout=TIMEOUT_S)
    # The broker answers describe requests from its metadata cache, which may lag the
    # create by a moment: wait until the stray rule is visible before applying.
    deadline = time.monotonic() + TIMEOUT_S
    while stray not in current_acls(client, principal) and time.monotonic() < deadline:
        time.sleep(0.1)

    created, deleted = apply_acls(client, rules)

    assert (created, deleted) == ([], [stray])
    assert current_acls(client, principal) == sorted(r for r in rules if r.principal == principal)
