"""The broker's ACLs, derived from the event catalogue (`contracts/events/catalog.json`).

The catalogue names, per event type, its topic, the one service that produces
it and the services that consume it. Each service authenticates as its own
principal (`User:<service>`) and is allowed exactly:

- WRITE on the topics of the event types it produces (its relay);
- READ on the topics of the event types it consumes; READ, WRITE and DELETE
  (records: purging its dead letters) on its own failure topics (prefix
  `<service>.`: `<service>.<topic>.retry.<n>` and
  `<service>.<topic>.dlq`), which its consumer writes failed messages to and
  reads back. They are the service's alone: no other principal can write a
  forged event into its retries;
- READ on its own consumer groups (prefix `<service>.`).

READ and WRITE imply DESCRIBE. Nothing else: no CREATE (topics are made by
`create_topics` with an admin principal), no ALTER, no DELETE elsewhere, no
access to another service's groups. With `allow.everyone.if.no.acl.found=false`
on the broker, a client without credentials or a principal without a rule is
refused. A dead letter is replayed through the service's own first retry topic
and purged from its own dead-letter topic, so the service's principal (the
operations API) does both.

`apply_acls` makes the broker hold exactly these rules for the principals it
manages: missing rules are created, rules of those principals that the
catalogue no longer implies are deleted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

TIMEOUT_S = 30.0


@dataclass(frozen=True, order=True)
class AclRule:
    """One ALLOW rule: `principal` may `operation` the `resource` named `name` (literal or prefix)."""

    principal: str
    resource: str  # "topic" or "group"
    pattern: str  # "literal" or "prefixed"
    name: str
    operation: str  # "READ", "WRITE", ...

    def binding(self) -> AclBinding:
        return AclBinding(
            ResourceType[self.resource.upper()],
            self.name,
            ResourcePatternType[self.pattern.upper()],
            self.principal,
            "*",
            AclOperation[self.operation],
            AclPermissionType.ALLOW,
        )

    def __str__(self) -> str:
        where = f"{self.name}*" if self.pattern == "prefixed" else self.name
        return f"{self.principal:<24} {self.operation:<6} {self.resource:<6} {where}"


def default_principal(service: str) -> str:
    return f"User:{service}"


def load_catalog(path: Path) -> dict[str, dict[str, Any]]:
    """The `event_types` of a catalog.json."""
    entries: dict[str, dict[str, Any]] = json.loads(path.read_text())["event_types"]
    return entries


def catalog_services(catalog: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every service the catalogue names as a producer or a consumer."""
    names: set[str] = set()
    for event_type, entry in catalog.items():
        producer = entry.get("producer")
        if not producer:
            raise ValueError(f"catalog: {event_type} names no producer")
        names.add(str(producer))
        names.update(str(consumer) for consumer in entry.get("consumers", []))
    return sorted(names)


def catalog_acls(
    catalog: Mapping[str, Mapping[str, Any]],
    *,
    principal_of: Callable[[str], str] = default_principal,
) -> list[AclRule]:
    """The rules every service's principal needs, and nothing more (sorted, no duplicates)."""
    rules: set[AclRule] = set()
    for service in catalog_services(catalog):
        principal = principal_of(service)
        rules.add(AclRule(principal, "group", "prefixed", f"{service}.", "READ"))
    for entry in catalog.values():
        topic = str(entry["topic"])
        rules.add(AclRule(principal_of(str(entry["producer"])), "topic", "literal", topic, "WRITE"))
        for consumer in entry.get("consumers", []):
            principal = principal_of(str(consumer))
            rules.add(AclRule(principal, "topic", "literal", topic, "READ"))
            # Its own retry and dead-letter topics; DELETE purges its own dead letters.
            for operation in ("READ", "WRITE", "DELETE"):
                rules.add(AclRule(principal, "topic", "prefixed", f"{consumer}.", operation))
    return sorted(rules)


def _name(value: Enum | str | int) -> str:
    return value.name if isinstance(value, Enum) else str(value)


def _rule(binding: AclBinding) -> AclRule:
    return AclRule(
        principal=binding.principal,
        resource=_name(binding.restype).lower(),
        pattern=_name(binding.resource_pattern_type).lower(),
        name=binding.name,
        operation=_name(binding.operation),
    )


def current_acls(admin: AdminClient, principal: str) -> list[AclRule]:
    """The ALLOW rules the broker holds for `principal`."""
    wanted = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name
        ResourcePatternType.ANY,
        principal,
        "*",
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    bindings = admin.describe_acls(wanted, request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    return sorted(_rule(binding) for binding in bindings)


def apply_acls(admin: AdminClient, rules: Iterable[AclRule]) -> tuple[list[AclRule], list[AclRule]]:
    """Makes the broker hold exactly `rules` for their principals; returns (created, deleted)."""
    desired = set(rules)
    existing: set[AclRule] = set()
    for principal in sorted({rule.principal for rule in desired}):
        existing.update(current_acls(admin, principal))
    extra = sorted(existing - desired)
    missing = sorted(desired - existing)
    if extra:
        filters = [
            AclBindingFilter(
                ResourceType[rule.resource.upper()],
                rule.name,
                ResourcePatternType[rule.pattern.upper()],
                rule.principal,
                "*",
                AclOperation[rule.operation],
                AclPermissionType.ANY,
            )
            for rule in extra
        ]
        for future in admin.delete_acls(filters, request_timeout=TIMEOUT_S).values():
            future.result(timeout=TIMEOUT_S)
    if missing:
        futures = admin.create_acls([rule.binding() for rule in missing], request_timeout=TIMEOUT_S)
        for future in futures.values():
            future.result(timeout=TIMEOUT_S)
    if missing or extra:
        _wait_until_in_force(admin, desired)
    return missing, extra


def _wait_until_in_force(admin: AdminClient, desired: set[AclRule]) -> None:
    """The controller acknowledges a change before the broker's authorizer applies it: wait for that."""
    principals = sorted({rule.principal for rule in desired})
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        held = {rule for principal in principals for rule in current_acls(admin, principal)}
        if held == desired:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker still holds {len(held)} rules, not the {len(desired)} applied")
        time.sleep(0.1)


def upsert_scram_users(admin: AdminClient, passwords: Mapping[str, str], *, iterations: int = 8192) -> None:
    """Creates or updates SCRAM-SHA-512 users, then waits until the broker knows every one."""
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, iterations), password.encode()
        )
        for name, password in passwords.items()
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=TIMEOUT_S).values():
        future.result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            everyone = admin.describe_user_scram_credentials(request_timeout=TIMEOUT_S)
            described = set(everyone.result(timeout=TIMEOUT_S))  # type: ignore[union-attr]
        except KafkaException:
            described = set()
        if described >= set(passwords):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"SCRAM users not in force: {sorted(set(passwords) - described)}")
        time.sleep(0.1)


def strimzi_kafka_users(rules: Iterable[AclRule], *, cluster: str) -> str:
    """The rules as Strimzi `KafkaUser` resources (SCRAM-SHA-512, simple authorization), one per principal.

    The operator creates each user and writes its password into a Secret named
    after it, which the service reads as KAFKA_SASL_PASSWORD.
    """
    by_principal: dict[str, list[AclRule]] = {}
    for rule in sorted(rules):
        by_principal.setdefault(rule.principal, []).append(rule)
    documents = []
    for principal, owned in by_principal.items():
        name = principal.removeprefix("User:")
        lines = [
            "apiVersion: kafka.strimzi.io/v1beta2",
            "kind: KafkaUser",
            "metadata:",
            f"  name: {name.replace('_', '-')}",
            f"  labels: {{strimzi.io/cluster: {cluster}}}",
            "spec:",
            "  authentication: {type: scram-sha-512}",
            "  authorization:",
            "    type: simple",
            "    acls:",
        ]
        for rule in owned:
            pattern = "prefix" if rule.pattern == "prefixed" else "literal"
            lines.append(
                f"      - resource: {{type: {rule.resource}, name: {rule.name}, patternType: {pattern}}}\n"
                f"        operations: [{rule.operation.capitalize()}]"
            )
        documents.append("\n".join(lines) + "\n")
    return "---\n" + "---\n".join(documents)
