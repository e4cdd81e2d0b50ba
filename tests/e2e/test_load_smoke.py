"""`make load` for a few seconds on the running platform: Locust places orders of
every outcome and browses the catalogue through the gateway, with no failure."""

from __future__ import annotations

import csv
import subprocess
import sys

from platform_client import GATEWAY_URL, REPO_ROOT, Platform

SMOKE_SECONDS = 10


def test_a_short_load_run_places_orders_of_every_outcome_without_failures(platform: Platform) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "load" / "run.py"),
            "--rate",
            "3",
            "--users",
            "4",
            "--seconds",
            str(SMOKE_SECONDS),
            "--modes",
            "orchestration",
            "--no-restart",
            "--host",
            GATEWAY_URL,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_SECONDS + 240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with (REPO_ROOT / ".devstack" / "load" / "orchestration_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    for name in [
        "/api/orders/ [success]",
        "/api/orders/ [out_of_stock]",
        "/api/orders/ [insufficient_funds]",
        "/api/orders/[id]/",
        "/api/products/",
        "/api/products/[id]/",
    ]:
        assert int(rows[name]["Request Count"]) >= 1, (name, rows.keys())
    assert rows["Aggregated"]["Failure Count"] == "0"
    # The orders reach their end: the last day's cancellations count both failures.
    sagas = platform.check(platform.http.get("/api/ops/order_service/sagas/", headers=platform.staff), 200)
    reasons = {row["reason"] for row in sagas["cancellations_by_reason"]}
    assert {"insufficient_stock", "insufficient_funds"} <= reasons
