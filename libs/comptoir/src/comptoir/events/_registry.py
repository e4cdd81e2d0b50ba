"""Event handlers, registered per event type and consumer purpose.

A service puts its handlers in `<app>/handlers.py` (found by `consume_events`
through Django's module autodiscovery):

    @event_handler("order.created")
    def reserve_stock_for_order(event: Envelope) -> None:
        reserve_stock(order_id=event.payload["order_id"], lines=event.payload["lines"])

A handler is an entry point: it reads the event and calls a service function.
It runs inside the transaction that also writes the inbox row, so its database
effect happens once however often the event is delivered. Handlers of one
purpose form one consumer group, `<service>.<purpose>` (default purpose
`events`), run by one `consume_events --purpose <purpose>` process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

from ._contracts import topic_for
from ._envelope import Envelope

Handler = Callable[[Envelope], None]
H = TypeVar("H", bound=Handler)
DEFAULT_PURPOSE = "events"


@dataclass(frozen=True)
class HandlerSpec:
    event_type: str
    purpose: str
    function: Handler


_handlers: dict[tuple[str, str], HandlerSpec] = {}


def _qualified(function: Handler) -> str:
    return f"{function.__module__}.{getattr(function, '__qualname__', repr(function))}"


def event_handler(event_type: str, *, purpose: str = DEFAULT_PURPOSE) -> Callable[[H], H]:
    """Registers the decorated function as the handler of `event_type` for `purpose`."""

    def register(function: H) -> H:
        key = (purpose, event_type)
        existing = _handlers.get(key)
        if existing is not None and _qualified(existing.function) != _qualified(function):
            raise ImproperlyConfigured(
                f"{event_type} already has a handler for purpose {purpose!r}: {_qualified(existing.function)}"
            )
        _handlers[key] = HandlerSpec(event_type, purpose, function)
        return function

    return register


def handlers_for(purpose: str = DEFAULT_PURPOSE) -> dict[str, Handler]:
    """event type -> handler, for one purpose."""
    return {event_type: spec.function for (p, event_type), spec in _handlers.items() if p == purpose}


def purposes() -> list[str]:
    return sorted({purpose for purpose, _ in _handlers})


def handled_topics() -> list[str]:
    """The topics of every registered handler, all purposes."""
    return sorted({topic_for(event_type) for _, event_type in _handlers})
