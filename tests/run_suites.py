"""Runs pytest suites, each in its own folder (each is its own Django project),
keeping their JUnit reports, and prints one closing line over all of them:
'tests: N passed, N failed, N skipped'.

    run_suites.py --reports DIR SUITE...   run the suites, reports into DIR
    run_suites.py --summarize DIR          the closing line over every report in DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def totals(reports: Path) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for report in sorted(reports.glob("*.xml")):
        root = ET.parse(report).getroot()  # noqa: S314 - our own pytest's report
        for node in root.iter("testsuite"):
            tests = int(node.get("tests", 0))
            failures = int(node.get("failures", 0)) + int(node.get("errors", 0))
            skipped = int(node.get("skipped", 0))
            counts["failed"] += failures
            counts["skipped"] += skipped
            counts["passed"] += tests - failures - skipped
    return counts


def summary_line(counts: dict[str, int]) -> str:
    return f"tests: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"


def run(suites: list[str], reports: Path) -> int:
    reports = reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    failed_suites = []
    for suite in suites:
        report = reports / f"{suite.replace('/', '_')}.xml"
        report.unlink(missing_ok=True)
        print(f"\n== pytest {suite}", flush=True)
        began = time.monotonic()
        code = subprocess.run(
            [sys.executable, "-m", "pytest", f"--junitxml={report}"], cwd=suite, check=False
        ).returncode
        print(f"== {suite}: exit {code} in {time.monotonic() - began:.0f} s", flush=True)
        if code != 0:
            failed_suites.append(suite)
            if not report.exists():
                # A suite that could not even start counts as one failure.
                report.write_text(
                    f'<testsuites><testsuite name="{suite}" tests="1" failures="1"/></testsuites>'
                )
    if failed_suites:
        print(f"\nfailing suites: {', '.join(failed_suites)}")
    return 1 if failed_suites else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=Path, help="folder for the JUnit reports")
    parser.add_argument(
        "--summarize", type=Path, help="print the closing line over the reports in this folder"
    )
    parser.add_argument("suites", nargs="*")
    args = parser.parse_args()
    if args.summarize:
        print(f"\n{summary_line(totals(args.summarize))}")
        return 0
    if not args.reports or not args.suites:
        parser.error("give --reports DIR and at least one suite")
    return run(args.suites, args.reports)


if __name__ == "__main__":
    sys.exit(main())
