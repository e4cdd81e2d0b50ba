"""Fixtures for the event backbone's tests: unique topics and groups per test,
real relay and consumer subprocesses on the test database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from pytest_django import Settings

from .support import Spawner


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database of one's own when DJANGO_TEST_DATABASE_NAME names one."""
    name = os.environ.get("DJANGO_TEST_DATABASE_NAME")
    if name:
        connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = name


@pytest.fixture
def notes_topic(settings: Settings) -> str:
    topic = f"test.notes-{uuid.uuid4().hex[:12]}"
    settings.COMPTOIR_EVENTS = {**settings.COMPTOIR_EVENTS, "TOPICS": {"test.note-recorded": topic}}
    return topic


@pytest.fixture
def group_id() -> str:
    return f"comptoir_chassis.test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def spawner(transactional_db: None, notes_topic: str, tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(notes_topic, tmp_path)
    yield spawner
    spawner.stop_all()
