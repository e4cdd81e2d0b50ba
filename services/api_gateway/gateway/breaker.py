"""A circuit breaker per upstream, small enough to read in one go.

closed: requests flow; `failure_threshold` consecutive transport failures
(refused, reset, timeout) open it. open: requests are refused at once (503)
for `reset_timeout_s`. half-open: one trial request goes through; its success
closes the breaker, its failure opens it again. State is per worker process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_timeout_s: float,
        on_change: Callable[[str, State], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = max(1, failure_threshold)
        self.reset_timeout_s = reset_timeout_s
        self.on_change = on_change
        self.clock = clock
        self.state = State.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trial_started_at = 0.0

    def _set(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(self.name, state)

    def allow(self) -> bool:
        """May a request go to the upstream now? (In half-open: only the one trial.)"""
        if self.state is State.CLOSED:
            return True
        now = self.clock()
        if self.state is State.OPEN:
            if now - self.opened_at < self.reset_timeout_s:
                return False
            self._set(State.HALF_OPEN)
        elif now - self.trial_started_at < self.reset_timeout_s:
            # A trial is in flight (one that never reported frees its slot after a while).
            return False
        self.trial_started_at = now
        return True

    def retry_after(self) -> int:
        remaining = self.reset_timeout_s - (self.clock() - self.opened_at)
        return max(1, int(remaining + 0.999))

    def record_success(self) -> None:
        self.failures = 0
        if self.state is not State.CLOSED:
            self._set(State.CLOSED)

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is State.HALF_OPEN or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
            self._set(State.OPEN)
