"""The repository's contracts: found by default, valid, their examples valid, topics named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pytest_django import Settings

from comptoir.events import ContractError, contracts_dir, current_version, topic_for, validate_payload

REPO_CONTRACTS = Path(__file__).resolve().parents[4] / "contracts" / "events"
SAGA_EVENTS = [
    "order.cancelled",
    "order.confirmed",
    "order.created",
    "payment.failed",
    "payment.refunded",
    "payment.succeeded",
    "stock.rejected",
    "stock.released",
    "stock.reserved",
    "user.deactivated",
    "user.registered",
]


@pytest.fixture
def repo_contracts(settings: Settings) -> Path:
    """The default: no setting, so the folder is found walking up from BASE_DIR."""
    del settings.COMPTOIR_EVENT_CONTRACTS_DIR
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "TOPICS": {}}
    return contracts_dir()


def test_default_is_found_walking_up_from_base_dir(repo_contracts: Path) -> None:
    assert repo_contracts == REPO_CONTRACTS


def test_setting_points_elsewhere() -> None:
    assert contracts_dir() == Path(__file__).resolve().parents[1] / "eventsapp" / "contracts" / "events"


def test_catalogue_lists_the_saga_events_with_their_topics(repo_contracts: Path) -> None:
    catalog = json.loads((repo_contracts / "catalog.json").read_text())["event_types"]
    assert sorted(catalog) == SAGA_EVENTS
    assert topic_for("order.created") == "orders.order-created"
    assert topic_for("payment.refunded") == "payments.payment-refunded"
    assert current_version("stock.reserved") == 1


@pytest.mark.parametrize("event_type", SAGA_EVENTS)
def test_every_schema_is_valid_and_accepts_its_examples(repo_contracts: Path, event_type: str) -> None:
    schema = json.loads((repo_contracts / event_type / "1.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema.get("additionalProperties", True) is True  # open content: optional fields can be added
    assert len(schema["examples"]) >= 1
    for example in schema["examples"]:
        validate_payload(event_type, 1, example)


def test_violations_are_listed_with_their_paths(repo_contracts: Path) -> None:
    payload = {
        "order_id": "o-1",
        "user_id": "u-1",
        "lines": [{"product_id": "p-1", "quantity": 0, "unit_price": 9.9}],
        "amount": "19.80",
        "currency": "eur",
    }
    with pytest.raises(ContractError) as caught:
        validate_payload("order.created", 1, payload)
    assert caught.value.errors == [
        "currency: 'eur' does not match '^[A-Z]{3}$'",
        "lines.0.quantity: 0 is less than the minimum of 1",
        "lines.0.unit_price: 9.9 is not of type 'string'",
    ]


def test_unknown_version_is_a_contract_error(repo_contracts: Path) -> None:
    with pytest.raises(ContractError, match=r"order.created: no schema for version 7"):
        validate_payload("order.created", 7, {})
