"""`make load`: Locust, headless, against the running `make up` platform, in each saga mode.

    python bench/load/run.py --rate 5 --users 10 --seconds 60 --modes "orchestration choreography"

The run is split evenly between the modes: before each part order_service's
processes are restarted with SAGA_MODE set (as `make demo` does), and left in
the mode they had at the end. Locust's statistics go to the terminal and to
`.devstack/load/<mode>_*.csv`; the exit status is Locust's (1 when a request failed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devstack import _platform  # noqa: E402
from devstack._config import HOST, SERVICE_PORTS, STATE_DIR  # noqa: E402

GATEWAY = os.environ.get("COMPTOIR_GATEWAY_URL", f"http://{HOST}:{SERVICE_PORTS['api_gateway']}")
MODES = ("orchestration", "choreography")
READY_TIMEOUT_S = 120.0


def switch_mode(mode: str) -> None:
    """order_service's processes again, with SAGA_MODE=mode; then wait until the gateway sees it ready."""
    os.environ["SAGA_MODE"] = mode
    for process in _platform.processes("order_service"):
        process.stop()
        process.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            checks = httpx.get(f"{GATEWAY}/health/ready", timeout=5).json().get("checks", {})
            if checks.get("order_service") == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise SystemExit(f"load: order_service not ready {READY_TIMEOUT_S:.0f} s after its restart")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5.0, help="orders a second, all users together")
    parser.add_argument("--users", type=int, default=20, help="simulated customers (half order, half browse)")
    parser.add_argument("--seconds", type=int, default=60, help="the whole run, split between the modes")
    parser.add_argument("--modes", default=" ".join(MODES), help="saga modes, in turn (space separated)")
    parser.add_argument("--host", default=GATEWAY)
    parser.add_argument("--no-restart", action="store_true", help="leave order_service's mode as it is")
    args = parser.parse_args(argv)
    modes = args.modes.split()
    if not modes or any(mode not in MODES for mode in modes):
        parser.error(f"--modes: one or more of {', '.join(MODES)}")
    if not 0 < args.rate <= 1000 or not 2 <= args.users <= 1000 or not 1 <= args.seconds <= 24 * 3600:
        parser.error("--rate 0-1000 orders/s, --users 2-1000, --seconds 1-86400")
    try:
        httpx.get(f"{args.host}/health/live", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        print(
            f"load: the gateway at {args.host} does not answer ({error}): run `make up` first",
            file=sys.stderr,
        )
        return 2

    reports = STATE_DIR / "load"
    reports.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("SAGA_MODE", "orchestration")
    part_s = max(1, args.seconds // len(modes))
    status = 0
    try:
        for mode in modes:
            if not args.no_restart:
                print(f"== load: SAGA_MODE={mode} (restarting order_service)", flush=True)
                switch_mode(mode)
            print(
                f"== load: {args.rate:g} orders/s, {args.users} users, {part_s} s against {args.host}",
                flush=True,
            )
            env = {**os.environ, "LOAD_RATE": str(args.rate), "LOAD_USERS": str(args.users)}
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(ROOT / "bench" / "load" / "locustfile.py"),
                    "--headless",
                    "--host",
                    args.host,
                    "--users",
                    str(args.users),
                    "--spawn-rate",
                    str(args.users),
                    "--run-time",
                    f"{part_s}s",
                    "--stop-timeout",
                    "10",
                    "--csv",
                    str(reports / mode),
                    "--only-summary",
                ],
                env=env,
                check=False,
                timeout=part_s + 300,
            )
            status = status or result.returncode
    finally:
        if not args.no_restart and os.environ.get("SAGA_MODE") != previous:
            print(f"== load: SAGA_MODE={previous} again (restarting order_service)", flush=True)
            switch_mode(previous)
    return status


if __name__ == "__main__":
    sys.exit(main())
