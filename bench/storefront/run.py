"""Storefront budgets: the first load of a page, in Debian's chromium (Playwright), on loopback.

    .venv/bin/python bench/storefront/run.py [--loads 10] [--url http://127.0.0.1:8010]

Needs the platform up (`make up`). Each load is a fresh browser context (empty
cache, no cookies). Per page it reports the bytes on the wire (response bodies
as transferred, i.e. compressed when the server compresses, plus headers, every
request of the load) and the time to interactive (`domInteractive` of the
navigation timing) and to the load event, as medians and maxima, against the
budgets: under 250 KB and interactive within 1 s. Raw figures go to
bench/storefront/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Request, sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PAGES = {"catalogue": "/", "log in": "/login/", "register": "/register/", "cart": "/cart/"}
BUDGET_BYTES = 250 * 1024
BUDGET_INTERACTIVE_MS = 1000.0


def one_load(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context()
    page = context.new_page()
    finished: list[Request] = []
    page.on("requestfinished", lambda request: finished.append(request))
    response = page.goto(url, wait_until="load", timeout=30_000)
    if response is None or response.status >= 400:
        raise SystemExit(f"{url}: {response.status if response else 'no answer'}")
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {interactive: n.domInteractive, load: n.loadEventEnd}; }"
    )
    wire = 0
    for request in finished:
        sizes = request.sizes()
        wire += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    context.close()
    return {
        "bytes": float(wire),
        "requests": float(len(finished)),
        "interactive_ms": float(timing["interactive"]),
        "load_ms": float(timing["load"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    port = os.environ.get("COMPTOIR_STOREFRONT_PORT", "8010")
    parser.add_argument("--url", default=f"http://127.0.0.1:{port}")
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()
    if not 1 <= args.loads <= 200:
        parser.error("--loads must be between 1 and 200")
    results: dict[str, dict[str, Any]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            for name, path in PAGES.items():
                one_load(browser, args.url + path)  # warm the server (its own caches), not the browser
                loads = [one_load(browser, args.url + path) for _ in range(args.loads)]
                results[name] = {
                    "path": path,
                    "loads": loads,
                    **{
                        f"{key}_{stat}": round(fn([load[key] for load in loads]), 1)
                        for key in ("bytes", "requests", "interactive_ms", "load_ms")
                        for stat, fn in (("median", statistics.median), ("max", max))
                    },
                }
        finally:
            browser.close()
    ok = True
    header = f"{'page':<10} {'KB (median/max)':>16} {'requests':>9}"
    print(f"{header} {'interactive ms (median/max)':>28} {'load ms':>8}")
    for name, figures in results.items():
        within = (
            figures["bytes_max"] <= BUDGET_BYTES and figures["interactive_ms_max"] <= BUDGET_INTERACTIVE_MS
        )
        ok &= within
        print(
            f"{name:<10} {figures['bytes_median'] / 1024:>7.1f} / {figures['bytes_max'] / 1024:<7.1f}"
            f" {figures['requests_median']:>9.0f} {figures['interactive_ms_median']:>13.0f} /"
            f" {figures['interactive_ms_max']:<13.0f} {figures['load_ms_median']:>8.0f}"
            f"  {'within budget' if within else 'OVER BUDGET'}"
        )
    budget_ms = BUDGET_INTERACTIVE_MS
    print(f"budgets: under {BUDGET_BYTES // 1024} KB on the wire, interactive within {budget_ms:.0f} ms")
    out = HERE / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"argv": sys.argv, "url": args.url, "pages": results}, indent=2))
    print(f"raw figures: {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
