"""The services' database backend: its health check sends no query to a live
connection and still drops one the server has ended (real PostgreSQL)."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from comptoir.postgresql.base import DatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def checked_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Calls of Django's own check (`is_usable`, a SELECT 1), recorded and still made."""
    calls: list[str] = []
    original = DatabaseWrapper.is_usable

    def is_usable(self: DatabaseWrapper) -> bool:
        calls.append(self.alias)
        return original(self)

    monkeypatch.setattr(DatabaseWrapper, "is_usable", is_usable)
    return calls


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _next_request() -> None:
    """What Django does between two requests (or the chassis between two tasks)."""
    connection.close_if_unusable_or_obsolete()


def _terminate(pid: int) -> None:
    """Ends a backend from another connection, as a PostgreSQL restart or an admin would."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])  # returns once it is gone


def test_the_services_run_this_backend_with_health_checks_on() -> None:
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.settings_dict["ENGINE"] == "comptoir.postgresql"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
    assert connection.settings_dict["CONN_MAX_AGE"] != 0


def test_a_live_connection_is_reused_without_a_query(checked_calls: list[str]) -> None:
    pid = _backend_pid()
    _next_request()
    with CaptureQueriesContext(connection) as queries:
        assert _backend_pid() == pid  # the same server process: kept, not reopened
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT pg_backend_pid()"]
    assert checked_calls == []  # and no SELECT 1 sent to find that out


def test_a_connection_the_server_ended_is_reopened_before_use(checked_calls: list[str]) -> None:
    pid = _backend_pid()
    _next_request()
    _terminate(pid)
    # The request's first query runs on a new connection instead of failing.
    new_pid = _backend_pid()
    assert new_pid != pid
    assert checked_calls == []
    _next_request()
    assert _backend_pid() == new_pid


def test_within_a_transaction_the_check_is_djangos_own(checked_calls: list[str]) -> None:
    _backend_pid()
    _next_request()
    raw = connection.connection
    assert raw is not None
    raw.execute("BEGIN")  # left open below Django's back: not a plain idle connection
    try:
        connection.close_if_health_check_failed()
        assert checked_calls == ["default"]
    finally:
        if connection.connection is not None:
            connection.connection.execute("ROLLBACK")


def test_a_statement_run_often_on_a_connection_is_prepared_by_the_server() -> None:
    """Parameters are bound by PostgreSQL and a statement run DB_PREPARE_THRESHOLD
    times (5) is prepared there: it is no longer parsed and planned per run."""
    statement = "SELECT %s::int + 1 AS comptoir_prepared_probe"

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
                ["%comptoir_prepared_probe%"],
            )
            return [row[0] for row in cursor.fetchall()]

    connection.close()
    with connection.cursor() as cursor:
        for n in range(4):
            cursor.execute(statement, [n])
            assert cursor.fetchone() == (n + 1,)
    assert prepared() == []  # not yet: four runs
    with connection.cursor() as cursor:
        for n in range(4, 6):
            cursor.execute(statement, [n])
            assert cursor.fetchone() == (n + 1,)
    # The server holds it with a placeholder: the value was never in the text.
    assert prepared() == ["SELECT $1::int + 1 AS comptoir_prepared_probe"]
