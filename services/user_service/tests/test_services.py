"""Races the services must win: the database decides, never a prior read."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from comptoir import ApplicationError
from tests.conftest import PASSWORD
from users import services
from users.models import RefreshToken, User

pytestmark = pytest.mark.django_db(transaction=True)


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs the calls in threads released together; returns each result or exception."""
    barrier = threading.Barrier(len(calls), timeout=10)
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_two_sign_ups_with_one_email_make_one_account() -> None:
    results = race(
        [lambda: services.user_register(email="same@example.com", password=PASSWORD) for _ in range(2)]
    )

    assert User.objects.filter(email="same@example.com").count() == 1
    (conflict,) = [r for r in results if isinstance(r, ApplicationError)]
    assert (conflict.code, conflict.status_code) == ("email_taken", 409)


def test_one_refresh_token_spent_twice_at_once_yields_one_pair() -> None:
    User.objects.create_user("ada@example.com", PASSWORD)
    pair = services.auth_login(email="ada@example.com", password=PASSWORD)

    results = race([lambda: services.auth_refresh(refresh_token=pair.refresh) for _ in range(2)])

    assert len([r for r in results if isinstance(r, services.TokenPair)]) == 1
    (refused,) = [r for r in results if isinstance(r, ApplicationError)]
    assert (refused.code, refused.status_code) == ("refresh_token_reused", 401)
    # The second use looks like a replay: the session is closed, nothing stays live.
    assert not RefreshToken.objects.filter(revoked_at__isnull=True).exists()
