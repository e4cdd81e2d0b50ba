"""`make help` lists every documented target of the Makefile, digits and long names
included, with the descriptions in one column."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def documented_targets() -> dict[str, str]:
    targets = {}
    for line in (REPO_ROOT / "Makefile").read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.-]+):[^=]*?## (.*)$", line)
        if found:
            targets[found[1]] = found[2]
    return targets


def test_make_help_lists_every_documented_target_aligned() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    listed = {}
    columns = set()
    for line in lines:
        found = re.match(r"^  make (\S+)( +)(.*)$", line)
        assert found, f"not a help line: {line!r}"
        listed[found[1]] = found[3]
        columns.add(len("  make ") + len(found[1]) + len(found[2]))
    assert listed == documented_targets()
    assert "observability-e2e" in listed
    assert len(columns) == 1, f"descriptions start in columns {sorted(columns)}"
