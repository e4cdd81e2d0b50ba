"""Django's PostgreSQL backend, with a health check that sends no query.

`CONN_HEALTH_CHECKS` makes Django check a persistent connection before its
first use in every request or task, with a `SELECT 1`: one round trip, about a
quarter of a millisecond of client CPU, before every request's real work (some
seven per order across the services). A connection the server has ended
(a restart, `pg_terminate_backend`, an idle timeout) is one on which the server
has sent its last message and closed its side: the socket turns readable. An
idle connection on which nothing has arrived since its last answer was complete
is therefore alive as far as the server has said, which is all `SELECT 1` would
learn a millisecond later; a readable one is closed and reopened (whatever
arrived: a notice, or the goodbye). Anything less plain (the connection in a
transaction, psycopg already holding it broken) gets Django's own check.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        # Django's own attributes (django-stubs does not declare the two health_check ones).
        enabled: bool = getattr(self, "health_check_enabled", False)
        done: bool = getattr(self, "health_check_done", True)
        if self.pool or self.connection is None or not enabled or done:
            return
        quiet = _quiet(self.connection)
        if quiet is None:
            super().close_if_health_check_failed()  # Django's SELECT 1
            return
        if not quiet:
            self.close()
        self.health_check_done = True


def _quiet(connection: psycopg.Connection[Any]) -> bool | None:
    """True: open, idle, nothing received since its last answer; False: the server
    sent something unasked (or closed it); None: not a plain idle connection."""
    if connection.broken or connection.closed:
        return None
    pgconn = connection.pgconn
    if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return None
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)
