"""Deleting outbox and inbox rows past their retention, in short chunks.

A service that handles 2,000 events a second writes 7 million outbox rows an
hour and as many inbox rows per consumer group. One unbounded DELETE of a
day's rows would hold its locks and its snapshot for minutes; a sweep that
deletes a fixed number per minute falls behind for good. So a sweep deletes in
chunks of at most `chunk` rows, each chunk its own short transaction (the
process runs it in autocommit), until a chunk comes back short (caught up) or
its time budget is spent; a sweep cut short by its budget is due again after
`catch_up_s` instead of `every_s`. The relay and the consumer run their sweep
between batches, full batches or not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.db import connections

CHUNK_ROWS = 5000
BUDGET_S = 0.5
CATCH_UP_S = 1.0


class RetentionSweeper:
    """Runs `statement` (a DELETE of at most `chunk` rows, `%s` = the chunk size last) until caught up."""

    def __init__(
        self,
        *,
        statement: str,
        params: Sequence[Any],
        every_s: float,
        using: str = "default",
        chunk: int = CHUNK_ROWS,
        budget_s: float = BUDGET_S,
        catch_up_s: float = CATCH_UP_S,
    ) -> None:
        self.statement = statement
        self.params: list[Any] = list(params)
        self.every_s = every_s
        self.using = using
        self.chunk = chunk
        self.budget_s = budget_s
        self.catch_up_s = catch_up_s
        self._next = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def sweep(self, *, budget_s: float | None = None) -> int:
        """Deletes chunk after chunk until one comes back short or the budget is spent; returns
        how many rows were deleted. `budget_s=float("inf")` sweeps until caught up."""
        budget = self.budget_s if budget_s is None else budget_s
        began = time.monotonic()
        deleted = 0
        caught_up = False
        with connections[self.using].cursor() as cursor:
            while time.monotonic() - began < budget:
                cursor.execute(self.statement, [*self.params, self.chunk])
                count = int(cursor.rowcount)
                deleted += count
                if count < self.chunk:
                    caught_up = True
                    break
        self._next = time.monotonic() + (self.every_s if caught_up else self.catch_up_s)
        return deleted
