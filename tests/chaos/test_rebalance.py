"""A consumer group rebalanced while its retry partitions are paused: email_service's
handlers fail transiently (user_service, its address book, is down), so their events
wait on the retry topics; meanwhile a second email_service consumer joins the group
(1→2) and leaves it (2→1). Once user_service is back, every order has its one mail
and no event is left behind or dead-lettered."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from harness import RUN_DIR, Devstack, Supervisor, log, one_mail_each
from platform_client import REPO_ROOT, Platform
from test_faults import assert_recovered, drive, new_chaos, orders

SERVICE = "email_service"
LOG = REPO_ROOT / ".devstack" / "logs" / f"{SERVICE}.consumer-2.log"


def second_consumer() -> subprocess.Popen[bytes]:
    """Another `consume_events` of the same group, started as the devstack started the first
    (its command line and environment), without a metrics port of its own."""
    pid = int((RUN_DIR / f"{SERVICE}.consumer.pid").read_text())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    environ = dict(
        entry.split(b"=", 1)
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if b"=" in entry
    )
    env = {key.decode(): value.decode() for key, value in environ.items()}
    env.pop("COMPTOIR_METRICS_PORT", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as out:
        return subprocess.Popen(
            [arg.decode() for arg in argv],
            cwd=REPO_ROOT / "services" / SERVICE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_rebalance_while_retry_topics_are_paused(
    platform: Platform, devstack: Devstack, supervisor: Supervisor
) -> None:
    chaos = new_chaos("rebalance 1→2→1 during retries", platform, devstack, supervisor)
    load = chaos.load(count=orders(30), duration_s=40)

    def fault() -> None:
        with supervisor.holding("user_service.web"):
            log(f"{chaos.name}: user_service.web down: email handlers fail and retry")
            devstack.stop("user_service.web")
            time.sleep(10)
            extra = second_consumer()
            log(f"{chaos.name}: a second {SERVICE} consumer joins (pid {extra.pid})")
            try:
                time.sleep(20)
                assert extra.poll() is None, f"the second consumer exited: see {LOG}"
            finally:
                log(f"{chaos.name}: the second consumer leaves")
                os.killpg(extra.pid, signal.SIGTERM)
                try:
                    extra.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(extra.pid, signal.SIGKILL)
                    extra.wait(timeout=10)
            time.sleep(5)
            assert devstack.start("user_service.web")

    healed_at = drive(chaos, load, fault)
    assert_recovered(chaos.recover(load, healed_at=healed_at, extra=one_mail_each(platform, load)))
