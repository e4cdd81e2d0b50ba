"""`python -m devstack status` (and `make status`): its exit code says whether what
runs is a state `up`/`down` leaves, so `up --infra` followed by `status` succeeds."""

from __future__ import annotations

import pytest

from devstack.__main__ import status_code

UP = True
DOWN = False


@pytest.mark.parametrize(
    ("infra", "services", "expected"),
    [
        ([DOWN, DOWN, DOWN], [DOWN, DOWN], 0),  # nothing started
        ([UP, UP, UP], [DOWN, DOWN], 0),  # up --infra
        ([UP, UP, UP], [UP, UP], 0),  # up
        ([UP, DOWN, UP], [DOWN, DOWN], 1),  # a broker died
        ([UP, UP, UP], [UP, DOWN], 1),  # a service process died
        ([DOWN, DOWN, DOWN], [UP, DOWN], 1),  # services left without infrastructure
    ],
)
def test_status_code(infra: list[bool], services: list[bool], expected: int) -> None:
    assert status_code(infra, services) == expected
