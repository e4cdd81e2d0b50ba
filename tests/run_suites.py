"""Runs each pytest suite in its own folder (each is its own Django project) and
prints one closing line over all of them: 'N passed, N failed'."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def main(suites: list[str]) -> int:
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_suites = []
    with tempfile.TemporaryDirectory() as tmp:
        for suite in suites:
            report = Path(tmp) / f"{suite.replace('/', '_')}.xml"
            print(f"\n== pytest {suite}", flush=True)
            began = time.monotonic()
            code = subprocess.run(
                [sys.executable, "-m", "pytest", f"--junitxml={report}"], cwd=suite, check=False
            ).returncode
            print(f"== {suite}: exit {code} in {time.monotonic() - began:.0f} s", flush=True)
            if code != 0:
                failed_suites.append(suite)
            if not report.exists():
                totals["failed"] += 1
                continue
            root = ET.parse(report).getroot()  # noqa: S314 - our own pytest's report
            for suite_node in root.iter("testsuite"):
                tests = int(suite_node.get("tests", 0))
                failures = int(suite_node.get("failures", 0)) + int(suite_node.get("errors", 0))
                skipped = int(suite_node.get("skipped", 0))
                totals["failed"] += failures
                totals["skipped"] += skipped
                totals["passed"] += tests - failures - skipped
    if failed_suites:
        print(f"\nfailing suites: {', '.join(failed_suites)}")
    print(f"\ntests: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 1 if failed_suites else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
