"""`make bench`: the three benchmarks in one run, on the platform started for it,
with one summary table of every target and the figure reached.

    make bench                                  # everything, about 25 minutes on 2 cores
    .venv/bin/python bench/run_all.py --quick   # shorter phases, same table
    .venv/bin/python bench/run_all.py --memory-only   # PSS per process of the running platform

Run by `make bench` inside `python -m devstack run --platform` with the Makefile's
RATE_LIMITS_ENV (rate limits out of the way, everything else as shipped), so the
platform is fresh and stopped after.
In order: memory of the idle platform (PSS per process), the gateway benchmark
(its own stub, nginx and product_service next to the platform), the event
backbone benchmark (its own relay and consumer on the devstack's PostgreSQL and
Kafka), the saga benchmark (both modes, interleaved, through the gateway, with the
floors of an order's hand-offs measured first: a minimal Django request, a
statement through the ORM, a no-op Celery task), memory again. The summary adds
per mode the hand-off floor: the order's requests, statements, tasks (counted in
the saturation run) and events (costed by the events benchmark) at those floors. Each benchmark
writes its raw results in its own `results/` folder; this script writes the
summary to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUN_DIR = ROOT / ".devstack" / "run"
PY = sys.executable


# ------------------------------------------------------------------ memory (PSS)


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(leader: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, frontier = {leader}, [leader]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def platform_pss_mib() -> dict[str, float]:
    """PSS of every devstack process with its children (gunicorn and Celery workers,
    PostgreSQL backends), in MiB, and the total."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    per_process: dict[str, float] = {}
    for pid_file in sorted(RUN_DIR.glob("*.pid")):
        try:
            leader = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if leader in parents:
            kib = sum(_pss_kib(pid) for pid in _descendants(leader, parents))
            per_process[pid_file.name.removesuffix(".pid")] = round(kib / 1024, 1)
    per_process = dict(sorted(per_process.items(), key=lambda item: -item[1]))
    return {"total": round(sum(per_process.values()), 1), **per_process}


# ------------------------------------------------------------------ the benchmarks


def run(command: list[str], what: str) -> None:
    print(f"\n=== {what}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True, timeout=3600)
    print(f"=== {what}: done in {time.monotonic() - started:.0f} s", flush=True)


def newest(folder: Path, since: float) -> dict[str, Any]:
    files = [f for f in folder.glob("*.json") if f.stat().st_mtime >= since]
    if not files:
        raise SystemExit(f"bench: no result written in {folder.relative_to(ROOT)}")
    return dict(json.loads(max(files, key=lambda f: f.stat().st_mtime).read_text()))


def gateway_figures(result: dict[str, Any]) -> dict[str, float]:
    """Median ratio gateway/direct and added p50 on the product_service route, at each
    level; and nginx's added p50 on the same route (the reference proxy)."""
    rows = result.get("product_service") or []
    figures: dict[str, float] = {}
    for level in result["levels"]:
        direct = [r for r in rows if r["connections"] == level and r["target"].startswith("direct")]
        gateway = [r for r in rows if r["connections"] == level and r["target"].startswith("gateway")]
        nginx = [r for r in rows if r["connections"] == level and r["target"] == "nginx"]
        if direct and gateway:
            d_rps = statistics.median(r["requests_per_s"] for r in direct)
            g_rps = statistics.median(r["requests_per_s"] for r in gateway)
            figures[f"ratio_{level}"] = round(g_rps / d_rps, 2)
            d_p50 = statistics.median(r["p50_ms"] for r in direct)
            figures[f"added_p50_ms_{level}"] = round(
                statistics.median(r["p50_ms"] for r in gateway) - d_p50, 3
            )
            if nginx:
                added = statistics.median(r["p50_ms"] for r in nginx) - d_p50
                figures[f"nginx_added_p50_ms_{level}"] = round(added, 3)
    return figures


@dataclass(frozen=True)
class Target:
    what: str
    reached: str
    met: bool | None  # None: a bound or a reference measured in the run, not a target


def targets(
    gateway: dict[str, float],
    events: dict[str, Any],
    saga: dict[str, Any],
    memory: list[dict[str, float]],
) -> list[Target]:
    found: list[Target] = []

    def add(what: str, value: float | None, check: Callable[[float], bool], unit: str = "") -> None:
        if value is None:
            found.append(Target(what, "not measured", False))
        else:
            found.append(Target(what, f"{value:g}{unit}", check(value)))

    if saga:
        _saga_targets(saga, add, found)
        _handoff_floors(saga, events, found)
    if events:
        _event_targets(events, add, found)
    for key, value in gateway.items():
        level = key.rsplit("_", 1)[1]
        if key.startswith("ratio_"):
            add(f"gateway/direct, product route, {level} conn. ≥ 0.9", value, lambda v: v >= 0.9, "x")
        elif key.startswith("nginx_"):
            # The reference, not a target: what a C proxy adds on the same route in this run.
            found.append(
                Target(f"nginx added p50, product route, {level} conn. (reference)", f"{value:g} ms", None)
            )
        else:
            add(f"gateway added p50, product route, {level} conn. ≤ 0.3 ms", value, lambda v: v <= 0.3, " ms")
    for label, sample in zip(("idle", "after the saturation runs"), memory, strict=False):
        add(f"memory, whole platform {label} ≤ 2048 MiB PSS", sample["total"], lambda v: v <= 2048, " MiB")
    return found


_Add = Callable[[str, "float | None", Callable[[float], bool], str], None]


def _saga_targets(saga: dict[str, Any], add: _Add, found: list[Target]) -> None:
    medians = saga["medians"]
    for mode in ("orchestration", "choreography"):
        figures = medians.get(mode)
        if figures is None:
            continue
        add(f"{mode}: confirmed orders/s ≥ 100", figures["confirmed_per_s"], lambda v: v >= 100)
        add(
            f"{mode}: platform CPU per order ≤ 20 ms",
            figures["platform_ms_per_order"],
            lambda v: v <= 20,
            " ms",
        )
        statements = figures.get("statements_per_order")
        if statements is not None:
            by_service = figures.get("statements_per_order_by_service") or {}
            busiest = sorted(by_service.items(), key=lambda item: -item[1])
            detail = ", ".join(f"{name.removesuffix('_service')} {n:g}" for name, n in busiest if n)
            what = f"{mode}: SQL statements per order through Django (reference)"
            found.append(Target(what, f"{statements:g} ({detail})", None))
        for run_figures in _open_loops(saga, mode):
            rate = run_figures["rate"]
            add(f"{mode}: p50 at {rate:g}/s ≤ 50 ms", run_figures["p50"], lambda v: v <= 50, " ms")
            add(f"{mode}: p99 at {rate:g}/s ≤ 150 ms", run_figures["p99"], lambda v: v <= 150, " ms")
    floor = saga.get("request_floor") or {}
    for mode, ms in (floor.get("floor_ms_per_order") or {}).items():
        found.append(Target(f"{mode}: floor, minimal Django requests per order (bound)", f"{ms:g} ms", None))


CORES = os.cpu_count() or 1


def event_handoff_ms(events: dict[str, Any]) -> float | None:
    """CPU of one event's hand-off at its floor, from the events benchmark of this
    run: the relay's and Kafka's CPU per event (median of the rounds); the
    consumer's share is left out (its statements are counted with the order's)."""
    per_event = events.get("cpu_ms_per_event") or {}
    if not per_event.get("relay") or not per_event.get("kafka"):
        return None
    return statistics.median(per_event["relay"]) + statistics.median(per_event["kafka"])


def _handoff_floors(saga: dict[str, Any], events: dict[str, Any], found: list[Target]) -> None:
    """Per mode: the order's hand-offs (Django requests, statements, Celery tasks,
    events relayed, counted in the saturation run) at the floors measured in this
    run. What the platform's own code adds to an order is what lies above it."""
    event_ms = event_handoff_ms(events) if events else None
    for mode in ("orchestration", "choreography"):
        figures = saga["medians"].get(mode) or {}
        floor = figures.get("handoff_floor")
        if floor is None or event_ms is None:
            continue
        parts = dict(floor["parts_ms"])
        parts["events"] = figures["handoffs_per_order"]["events_relayed"] * event_ms
        total = sum(parts.values())
        detail = ", ".join(f"{name.replace('_', ' ')} {value:.1f}" for name, value in parts.items())
        found.append(
            Target(
                f"{mode}: hand-off floor per order, its requests, statements, tasks and events "
                "at their floors (bound)",
                f"{total:.1f} ms ({detail}); {1000 * CORES / total:.0f} orders/s on {CORES} cores",
                None,
            )
        )


def _event_targets(events: dict[str, Any], add: _Add, found: list[Target]) -> None:
    rates = events["median_events_per_s"]
    add(
        "events: full path ≥ 0.5 x storage floor", events["median_full_over_storage"], lambda v: v >= 0.5, "x"
    )
    add("events: full path ≥ 2,000 events/s", rates["full"], lambda v: v >= 2000, "/s")
    ceiling = events.get("full_path_cpu_ceiling_events_per_s")
    if ceiling is not None:
        found.append(
            Target(
                "events: full path's CPU ceiling, cores / CPU per event of its processes (bound)",
                f"{ceiling:g}/s ({events['full_path_cpu_ms_per_event']:g} ms per event)",
                None,
            )
        )
    add("events: p50 at 200/s ≤ 10 ms", events["latency_ms"]["p50"], lambda v: v <= 10, " ms")
    add("events: p99 at 200/s ≤ 50 ms", events["latency_ms"]["p99"], lambda v: v <= 50, " ms")


def _open_loops(saga: dict[str, Any], mode: str) -> list[dict[str, float]]:
    """Median p50/p99 per open-loop rate of `mode` over its runs."""
    by_rate: dict[float, list[tuple[float, float]]] = {}
    for run_figures in saga["runs"]:
        if run_figures["mode"] != mode:
            continue
        for phase in [run_figures["open_loop"], *run_figures["open_loop_other_rates"]]:
            by_rate.setdefault(float(phase["rate"]), []).append(
                (phase["confirmed_ms_p50"], phase["confirmed_ms_p99"])
            )
    return [
        {
            "rate": rate,
            "p50": round(statistics.median(p50 for p50, _ in pairs), 1),
            "p99": round(statistics.median(p99 for _, p99 in pairs), 1),
        }
        for rate, pairs in sorted(by_rate.items(), reverse=True)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter phases (a smoke run of the whole bench)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["gateway", "events", "saga"])
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="print the PSS of every process of the running platform (JSON) and stop",
    )
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps(platform_pss_mib(), indent=2))
        return 0
    started = time.time()
    memory = [platform_pss_mib()]
    print(f"memory, idle platform: {memory[0]['total']} MiB PSS", flush=True)
    # A benchmark left out (--skip) leaves its figures empty: no rows for its targets.
    gateway: dict[str, float] = {}
    events: dict[str, Any] = {}
    saga: dict[str, Any] = {}
    if "gateway" not in args.skip:
        run(
            [PY, "bench/gateway/run.py", "--product-service", "--levels", "4,32"]
            + (["--duration", "5", "--warmup", "2"] if args.quick else ["--duration", "10"]),
            "gateway",
        )
        gateway = gateway_figures(newest(HERE / "gateway" / "results", started))
    if "events" not in args.skip:
        run(
            [PY, "bench/events/run.py"]
            + (
                ["--events", "1500", "--rounds", "2", "--latency-seconds", "8"]
                if args.quick
                else ["--events", "3000", "--rounds", "2"]
            ),
            "events",
        )
        events = newest(HERE / "events" / "results", started)["summary"]
    if "saga" not in args.skip:
        modes = ["orchestration", "choreography"] + ([] if args.quick else ["choreography", "orchestration"])
        run(
            [
                PY,
                "bench/saga/run.py",
                "--modes",
                *modes,
                "--clients",
                "24",
                "--rate",
                "20",
                "--extra-rates",
                "2",
            ]
            + (
                ["--saturation-orders", "300", "--saturation-seconds", "30", "--open-seconds", "8"]
                if args.quick
                else ["--saturation-orders", "600", "--saturation-seconds", "60", "--open-seconds", "15"]
            ),
            "saga",
        )
        saga = newest(HERE / "saga" / "results", started)
        memory.append(platform_pss_mib())
    rows = targets(gateway, events, saga, memory)
    width = max(len(row.what) for row in rows)
    print(f"\n{'target'.ljust(width)}  {'reached':>14}  met")
    for row in rows:
        met = "-" if row.met is None else "yes" if row.met else "NO"
        print(f"{row.what.ljust(width)}  {row.reached:>14}  {met}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "targets": [row.__dict__ for row in rows],
                "memory_pss_mib": memory,
                "gateway": gateway,
                "events": events,
                "saga_medians": saga.get("medians"),
                "request_floor": saga.get("request_floor"),
                "floors": saga.get("floors"),
            },
            indent=2,
        )
    )
    print(f"\nsummary: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
