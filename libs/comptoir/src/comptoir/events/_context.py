"""What is being handled right now, so events published from a handler carry its
correlation id, saga id and trace context without the handler passing them."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from ._envelope import Envelope


@dataclass(frozen=True)
class Delivery:
    """Where the message being handled came from, and which attempt this is (1 = first)."""

    group: str
    topic: str
    partition: int
    offset: int
    attempt: int
    event: Envelope


_current: ContextVar[Delivery | None] = ContextVar("comptoir_event_delivery", default=None)


def current_delivery() -> Delivery | None:
    """The delivery the calling handler is handling, or None outside a handler."""
    return _current.get()
