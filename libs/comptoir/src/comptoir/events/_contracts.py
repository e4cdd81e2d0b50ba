"""Event contracts: the catalogue (event type -> topic, current version) and one
JSON Schema per event type and version, read from the repository's
`contracts/events/`.

The folder is `settings.COMPTOIR_EVENT_CONTRACTS_DIR` (or the environment
variable of that name) when set; otherwise the first `contracts/events` found
walking up from the service's BASE_DIR, which is the repository checkout in
development and CI and a copied folder in an image.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema_rs
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jsonschema import Draft202012Validator


class ContractError(ValueError):
    """A payload, an event type or a version the contracts do not allow."""

    def __init__(self, event_type: str, message: str, errors: list[str] | None = None) -> None:
        self.event_type = event_type
        self.errors = errors or []
        detail = f": {'; '.join(self.errors)}" if self.errors else ""
        super().__init__(f"{event_type}: {message}{detail}")


def contracts_dir() -> Path:
    configured = getattr(settings, "COMPTOIR_EVENT_CONTRACTS_DIR", None) or os.environ.get(
        "COMPTOIR_EVENT_CONTRACTS_DIR"
    )
    if configured:
        return Path(configured)
    return _discover(str(settings.BASE_DIR))


@functools.cache
def _discover(configured_base_dir: str) -> Path:
    # Cached per BASE_DIR: resolving and probing the folders costs system calls,
    # and every publish and every consumed event asks.
    base_dir = Path(configured_base_dir).resolve()
    for folder in [base_dir, *base_dir.parents]:
        candidate = folder / "contracts" / "events"
        if (candidate / "catalog.json").is_file():
            return candidate
    raise ImproperlyConfigured(
        f"no contracts/events/catalog.json above {base_dir}; set COMPTOIR_EVENT_CONTRACTS_DIR"
    )


@functools.cache
def _catalog(folder: Path) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = json.loads((folder / "catalog.json").read_text())["event_types"]
    return entries


@functools.cache
def _schema(folder: Path, event_type: str, version: int) -> dict[str, Any]:
    path = folder / event_type / f"{version}.json"
    if not path.is_file():
        raise ContractError(event_type, f"no schema for version {version} ({path})")
    schema: dict[str, Any] = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def _validator(folder: Path, event_type: str, version: int) -> Draft202012Validator:
    """The reference validator: it decides, and its messages are what a violation reports."""
    return Draft202012Validator(
        _schema(folder, event_type, version), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@functools.cache
def _fast_validator(folder: Path, event_type: str, version: int) -> Any:
    """The same schema compiled by jsonschema-rs (about a hundred times faster): it only
    answers "valid" early; anything it refuses goes to the reference validator, which decides."""
    return jsonschema_rs.Draft202012Validator(_schema(folder, event_type, version), validate_formats=True)


def _entry(event_type: str) -> dict[str, Any]:
    try:
        return _catalog(contracts_dir())[event_type]
    except KeyError:
        raise ContractError(event_type, "unknown event type (not in contracts/events/catalog.json)") from None


def event_types() -> list[str]:
    return sorted(_catalog(contracts_dir()))


def topic_for(event_type: str) -> str:
    """The topic carrying `event_type`: a `COMPTOIR_EVENTS["TOPICS"]` override, else the catalogue's."""
    # Read straight from the settings: this runs for every event published.
    override = getattr(settings, "COMPTOIR_EVENTS", {}).get("TOPICS", {}).get(event_type)
    if override:
        return str(override)
    return str(_entry(event_type)["topic"])


def current_version(event_type: str) -> int:
    """The version producers write by default."""
    return int(_entry(event_type)["version"])


def validate_payload(event_type: str, version: int, payload: Any) -> None:
    """Raises ContractError listing every violation (path: message) of the schema."""
    _entry(event_type)
    folder = contracts_dir()
    # Every event is validated where it is published and again where it is consumed.
    if _fast_validator(folder, event_type, version).is_valid(payload):
        return
    validator = _validator(folder, event_type, version)
    errors = sorted(validator.iter_errors(payload), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ContractError(
            event_type,
            f"payload does not match schema version {version}",
            [f"{'.'.join(str(p) for p in e.absolute_path) or '$'}: {e.message}" for e in errors],
        )


class ForeignProducerError(ContractError):
    """An envelope that names a producer other than the owner of its event type in the catalogue."""


def event_producer(event_type: str) -> str | None:
    """The one service that may produce `event_type`: a `COMPTOIR_EVENTS["PRODUCERS"]` override
    (a test or benchmark project producing its own events), else the catalogue's `producer`."""
    override = getattr(settings, "COMPTOIR_EVENTS", {}).get("PRODUCERS", {}).get(event_type)
    producer = override or _entry(event_type).get("producer")
    return str(producer) if producer else None


def producer_mismatch(event_type: str, producer: str) -> ForeignProducerError | None:
    """Why an envelope of `event_type` claiming `producer` must not be handled, or None.

    Defence in depth behind the broker's ACLs: even a message that reached the
    topic is refused when it does not come from the event type's owner.
    """
    owner = event_producer(event_type)
    if owner is None or producer == owner:
        return None
    return ForeignProducerError(
        event_type,
        f"only {owner} produces this event type (contracts/events/catalog.json), "
        f"but the envelope names producer {producer!r}",
    )


def event_types_produced_by(service: str) -> list[str]:
    return sorted(t for t, entry in _catalog(contracts_dir()).items() if entry.get("producer") == service)


def event_types_consumed_by(service: str) -> list[str]:
    return sorted(
        t for t, entry in _catalog(contracts_dir()).items() if service in entry.get("consumers", [])
    )
