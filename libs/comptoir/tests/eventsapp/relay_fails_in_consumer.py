"""`consume_events --with-relay` whose relay loop fails on its first batch: the
process must stop its consumer too and exit non-zero, not live on half alive."""

import os

import django

django.setup()

from django.core.management import execute_from_command_line  # noqa: E402

from comptoir.events import OutboxRelay  # noqa: E402


def _fail(self: OutboxRelay) -> int:
    raise RuntimeError("the relay's batch failed")


OutboxRelay.relay_once = _fail  # type: ignore[method-assign]
execute_from_command_line(
    [
        "manage.py",
        "consume_events",
        "--with-relay",
        "--group-id",
        os.environ["GROUP_ID"],
        "--max-seconds",
        "120",
    ]
)
