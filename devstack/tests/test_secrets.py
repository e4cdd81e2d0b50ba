"""The checkout's generated secrets: drawn once, kept, private."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack._secrets import secret


def test_a_secret_is_drawn_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = secret("kafka_admin", path)
    assert secret("kafka_admin", path) == first
    assert len(first) >= 40


def test_each_name_gets_its_own_random_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    values = {secret(f"client_{n}", path) for n in range(5)}
    assert len(values) == 5


def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    secret("anything", path)
    assert os.stat(path).st_mode & 0o077 == 0


def test_concurrent_draws_keep_every_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    with ThreadPoolExecutor(max_workers=8) as pool:
        drawn = dict(zip(range(40), pool.map(lambda n: secret(f"name_{n}", path), range(40)), strict=True))
    assert {n: secret(f"name_{n}", path) for n in range(40)} == drawn
