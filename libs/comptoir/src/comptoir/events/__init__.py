"""Comptoir's event backbone: contracts, transactional outbox, relay, consumers
with inbox, retry topics and dead letters, over the real Kafka broker.

A service:

- adds nothing to INSTALLED_APPS (the chassis settings include this app, whose
  migrations create the outbox and inbox tables);
- publishes inside its business transaction:

      with transaction.atomic():
          order = Order.objects.create(...)
          publish_event("order.created", aggregate_id=order.id, payload={...})

- handles events in `<app>/handlers.py` with `@event_handler("stock.reserved")`;
- runs two more processes (Procfile):

      relay: python manage.py outbox_relay
      consumer: python manage.py consume_events

Names are imported lazily: this package is also the Django app, imported before
its models may be.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import EventSettings, event_settings
    from ._consumer import ConsumerStats, EventConsumer
    from ._context import Delivery, current_delivery
    from ._contracts import ContractError, contracts_dir, current_version, topic_for, validate_payload
    from ._dlq import DeadLetter, get_dead_letter, list_dead_letters, purge_dead_letters, replay_dead_letter
    from ._envelope import Envelope, EnvelopeError
    from ._ops_api import ops_urlpatterns
    from ._outbox import NotInTransactionError, publish_event
    from ._registry import DEFAULT_PURPOSE, Handler, event_handler, handled_topics, handlers_for
    from ._relay import OutboxRelay, RelayStats
    from ._topics import declare_topics, dlq_topic, retry_topic
    from .models import InboxMessage, OutboxMessage, ReplayedDeadLetter

_WHERE = {
    "EventSettings": "_config",
    "event_settings": "_config",
    "ConsumerStats": "_consumer",
    "EventConsumer": "_consumer",
    "Delivery": "_context",
    "current_delivery": "_context",
    "ContractError": "_contracts",
    "contracts_dir": "_contracts",
    "current_version": "_contracts",
    "topic_for": "_contracts",
    "validate_payload": "_contracts",
    "DeadLetter": "_dlq",
    "get_dead_letter": "_dlq",
    "list_dead_letters": "_dlq",
    "purge_dead_letters": "_dlq",
    "replay_dead_letter": "_dlq",
    "Envelope": "_envelope",
    "EnvelopeError": "_envelope",
    "NotInTransactionError": "_outbox",
    "publish_event": "_outbox",
    "DEFAULT_PURPOSE": "_registry",
    "Handler": "_registry",
    "event_handler": "_registry",
    "handled_topics": "_registry",
    "handlers_for": "_registry",
    "OutboxRelay": "_relay",
    "RelayStats": "_relay",
    "declare_topics": "_topics",
    "dlq_topic": "_topics",
    "retry_topic": "_topics",
    "InboxMessage": "models",
    "OutboxMessage": "models",
    "ReplayedDeadLetter": "models",
    "ops_urlpatterns": "_ops_api",
}

__all__ = [
    "DEFAULT_PURPOSE",
    "ConsumerStats",
    "ContractError",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "EnvelopeError",
    "EventConsumer",
    "EventSettings",
    "Handler",
    "InboxMessage",
    "NotInTransactionError",
    "OutboxMessage",
    "OutboxRelay",
    "RelayStats",
    "ReplayedDeadLetter",
    "contracts_dir",
    "current_delivery",
    "current_version",
    "declare_topics",
    "dlq_topic",
    "event_handler",
    "event_settings",
    "get_dead_letter",
    "handled_topics",
    "handlers_for",
    "list_dead_letters",
    "ops_urlpatterns",
    "publish_event",
    "purge_dead_letters",
    "replay_dead_letter",
    "retry_topic",
    "topic_for",
    "validate_payload",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
