"""Faults under load, each followed by the recovery check: every order CONFIRMED or
CANCELLED, every outbox row published, every consumer group's lag 0, no dead letter
the scenario did not mean, no process crash-looping, `manage.py reconcile` clean."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pytest
from harness import Chaos, Devstack, Load, Result, Supervisor, log, one_mail_each, platform_processes
from platform_client import STAFF_EMAIL, STAFF_PASSWORD, Platform

# Scenario sizes: bounded in count and time (`make chaos` may scale them).
SCALE = float(os.environ.get("CHAOS_SCALE", "1"))
OUTAGE_S = float(os.environ.get("CHAOS_KAFKA_OUTAGE_S", "60"))
KILL_ROUNDS = int(os.environ.get("CHAOS_KILL_ROUNDS", "2"))


def orders(n: int) -> int:
    return max(10, int(n * SCALE))


def under_load(chaos: Chaos, load: Load, fault: Callable[[], None], *, warmup_s: float = 5.0) -> Result:
    """Runs the load in the background, the fault meanwhile, then the recovery check."""
    return chaos.recover(load, healed_at=drive(chaos, load, fault, warmup_s=warmup_s))


def drive(chaos: Chaos, load: Load, fault: Callable[[], None], *, warmup_s: float = 5.0) -> float:
    """Runs the load in the background and the fault meanwhile; returns when the fault ended."""
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            load.run(chaos.set_mode)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failure.append(error)

    driver = threading.Thread(target=drive, name="chaos-load", daemon=True)
    driver.start()
    # Orders flow first (the saga mode is set, the first one placed), then the fault.
    load.flowing.wait(timeout=120)
    time.sleep(warmup_s)
    try:
        fault()
    finally:
        healed_at = time.monotonic()
        log(f"{chaos.name}: fault over, load still placing")
        driver.join(timeout=load.duration_s + load.place_deadline_s + 120)
    if failure:
        raise failure[0]
    return healed_at


def assert_recovered(result: Result) -> None:
    assert result.orders > 0, result
    assert result.ok, (
        f"{result.scenario}: violations={result.violations} stuck={result.stuck} "
        f"lost_events={result.lost_events} notes={result.notes}"
    )


def new_chaos(name: str, platform: Platform, devstack: Devstack, supervisor: Supervisor) -> Chaos:
    log(f"== scenario {name}")
    # Access tokens are short-lived: the staff's session of a long run is renewed per scenario.
    platform.staff_token = platform.login(STAFF_EMAIL, STAFF_PASSWORD)
    return Chaos(platform, devstack, supervisor, name)


# ------------------------------------------------------------------ SIGKILL


# order_service's consumer process runs its outbox relay too (`consume_events --with-relay`).
FAST_KILLS = [
    "order_service.consumer",
    "product_service.consumer",
    "order_service.worker",
    "payment_service.web",
]


def kill_loop(chaos: Chaos, targets: list[str], rounds: int, pause_s: float) -> Callable[[], None]:
    def fault() -> None:
        for round_ in range(rounds):
            for name in targets:
                pid = chaos.devstack.kill(name)
                log(f"{chaos.name}: round {round_ + 1}: SIGKILL {name} (pid {pid})")
                time.sleep(1.0)
                assert chaos.supervisor.wait_running(name, timeout_s=120), f"{name} did not come back"
                time.sleep(pause_s)

    return fault


@pytest.mark.fast
def test_sigkill_round_under_load(platform: Platform, devstack: Devstack, supervisor: Supervisor) -> None:
    """A short round: a consumer with its relay thread, another consumer, the order worker, a
    web process, SIGKILLed under load."""
    chaos = new_chaos("sigkill (short round)", platform, devstack, supervisor)
    load = chaos.load(count=orders(20), duration_s=25, workers=2)
    assert_recovered(under_load(chaos, load, kill_loop(chaos, FAST_KILLS, rounds=1, pause_s=3)))


def test_sigkill_every_process_in_a_loop(
    platform: Platform, devstack: Devstack, supervisor: Supervisor
) -> None:
    """Each relay, each consumer, the workers, the beat and each web process, twice, under load."""
    targets = platform_processes()
    chaos = new_chaos(f"sigkill (every process, {KILL_ROUNDS} round(s))", platform, devstack, supervisor)
    load = chaos.load(count=orders(60 * KILL_ROUNDS), duration_s=len(targets) * KILL_ROUNDS * 6)
    assert_recovered(under_load(chaos, load, kill_loop(chaos, targets, rounds=KILL_ROUNDS, pause_s=2)))


# ---------------------------------------------------------------- infrastructure


def test_kafka_stopped_60s_under_load(platform: Platform, devstack: Devstack, supervisor: Supervisor) -> None:
    chaos = new_chaos(f"kafka stopped {OUTAGE_S:.0f} s", platform, devstack, supervisor)
    load = chaos.load(count=orders(60), duration_s=OUTAGE_S + 30)

    def fault() -> None:
        log(f"{chaos.name}: stopping kafka")
        devstack.stop("kafka")
        time.sleep(OUTAGE_S)
        log(f"{chaos.name}: starting kafka")
        assert devstack.start("kafka"), "kafka did not start again"

    assert_recovered(under_load(chaos, load, fault))


def test_postgres_restarted_under_load(
    platform: Platform, devstack: Devstack, supervisor: Supervisor
) -> None:
    chaos = new_chaos("postgresql restarted", platform, devstack, supervisor)
    load = chaos.load(count=orders(40), duration_s=30)

    def fault() -> None:
        log(f"{chaos.name}: restarting postgres")
        devstack.stop("postgres")
        time.sleep(5)
        assert devstack.start("postgres"), "postgres did not start again"

    assert_recovered(under_load(chaos, load, fault))


@pytest.mark.needs_durable_mail_enqueue
def test_redis_restarted_under_load(platform: Platform, devstack: Devstack, supervisor: Supervisor) -> None:
    """Also every order's one mail: email_service hands it to Celery through Redis."""
    chaos = new_chaos("redis restarted", platform, devstack, supervisor)
    load = chaos.load(count=orders(40), duration_s=30)

    def fault() -> None:
        log(f"{chaos.name}: restarting redis")
        devstack.stop("redis")
        time.sleep(5)
        assert devstack.start("redis"), "redis did not start again"

    assert_recovered(
        chaos.recover(load, healed_at=drive(chaos, load, fault), extra=one_mail_each(platform, load))
    )
