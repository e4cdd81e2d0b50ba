"""Refuses an event-contract change that would break a producer or a consumer.

Every schema file (`events/<event_type>/<version>.json`, `envelope.json`) is
compared with its previous committed version, found with git: the newest commit
touching the file whose content differs from the file as it is now. Within one
version a schema may only change compatibly in both directions, because
producers and consumers of different releases run side by side and both
validate:

- `required` must stay the same set (adding breaks messages already written,
  removing breaks consumers relying on the field);
- a property may be added only as optional, and removed only if it was optional
  (payloads are an open content model: no `additionalProperties: false`);
- every constraint (`type`, `pattern`, `enum`, `minimum`, `format`, ...) of a
  kept property must stay as it was; annotations (`description`, `examples`...)
  may change freely.

A breaking change is a new version file (`<version + 1>.json`) next to the old
one, which stays. The check also refuses deleting a committed version, gaps in
version numbers, and moving an event type to another topic or back to an older
version in `events/catalog.json`.

Usage: python contracts/check_compatibility.py [--contracts DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ANNOTATIONS = frozenset(
    {"title", "description", "examples", "$comment", "default", "deprecated", "readOnly", "writeOnly", "$id"}
)
STRUCTURAL = frozenset({"properties", "required", "items", "allOf", "anyOf", "oneOf"})


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", *args],  # noqa: S607 - git from PATH, like a developer
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def previous_version(repo: Path, relative: str, current: str | None) -> str | None:
    """The newest committed content of `relative` that differs from `current`."""
    for commit in _git(repo, "log", "--format=%H", "--", relative).split():
        try:
            content = _git(repo, "show", f"{commit}:{relative}")
        except subprocess.CalledProcessError:
            continue  # the commit deleted the file
        if content != current:
            return content
    return None


def breaking_changes(old: Any, new: Any, where: str = "$") -> list[str]:
    """Why `new` cannot replace `old` within the same version (empty: compatible)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [f"{where}: changed from {old!r} to {new!r}"]
    problems: list[str] = []
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in sorted(new_required - old_required):
        problems.append(f"{where}: property {name!r} became required")
    for name in sorted(old_required - new_required):
        problems.append(f"{where}: required property {name!r} is no longer required")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in sorted(set(old_props) & set(new_props)):
        problems += breaking_changes(old_props[name], new_props[name], f"{where}.{name}")
    if "items" in old or "items" in new:
        problems += breaking_changes(old.get("items"), new.get("items"), f"{where}[]")
    for keyword in ("allOf", "anyOf", "oneOf"):
        old_list, new_list = old.get(keyword, []), new.get(keyword, [])
        if len(old_list) != len(new_list):
            problems.append(f"{where}: {keyword} changed its number of branches")
            continue
        for index, (old_branch, new_branch) in enumerate(zip(old_list, new_list, strict=True)):
            problems += breaking_changes(old_branch, new_branch, f"{where}.{keyword}[{index}]")
    for keyword in sorted((set(old) | set(new)) - ANNOTATIONS - STRUCTURAL):
        if keyword not in new:
            problems.append(f"{where}: constraint {keyword!r} was removed")
        elif keyword not in old:
            problems.append(f"{where}: constraint {keyword!r} was added")
        elif old[keyword] != new[keyword]:
            problems.append(f"{where}: {keyword} changed from {old[keyword]!r} to {new[keyword]!r}")
    return problems


def _catalog_problems(old_text: str, new_text: str) -> list[str]:
    old = json.loads(old_text)["event_types"]
    new = json.loads(new_text)["event_types"]
    problems = []
    for event_type, entry in old.items():
        if event_type not in new:
            problems.append(f"catalog: event type {event_type} was removed")
            continue
        if new[event_type]["topic"] != entry["topic"]:
            problems.append(
                f"catalog: {event_type} moved from topic {entry['topic']} to {new[event_type]['topic']}"
            )
        if new[event_type]["version"] < entry["version"]:
            problems.append(f"catalog: {event_type} went back to version {new[event_type]['version']}")
    return problems


def check(contracts: Path) -> list[str]:
    repo = Path(_git(contracts, "rev-parse", "--show-toplevel").strip())
    prefix = contracts.resolve().relative_to(repo.resolve()).as_posix()
    problems: list[str] = []
    events = contracts / "events"
    catalog = json.loads((events / "catalog.json").read_text())["event_types"]
    for event_type, entry in sorted(catalog.items()):
        versions = sorted(int(p.stem) for p in (events / event_type).glob("*.json") if p.stem.isdigit())
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"{event_type}: versions {versions} are not 1..N")
        if entry["version"] not in versions:
            problems.append(f"{event_type}: catalog version {entry['version']} has no schema file")
    committed = {
        line
        for line in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", f"{prefix}/").splitlines()
        if line.endswith(".json")
    }
    for relative in sorted(committed):
        if not (repo / relative).exists():
            problems.append(f"{relative}: a committed contract was deleted")
    schema_files = [contracts / "envelope.json", *sorted(events.glob("*/*.json"))]
    for path in schema_files:
        relative = path.resolve().relative_to(repo.resolve()).as_posix()
        current = path.read_text()
        previous = previous_version(repo, relative, current)
        if previous is None:
            continue
        problems += [f"{relative}: {p}" for p in breaking_changes(json.loads(previous), json.loads(current))]
    catalog_relative = f"{prefix}/events/catalog.json"
    catalog_text = (events / "catalog.json").read_text()
    previous_catalog = previous_version(repo, catalog_relative, catalog_text)
    if previous_catalog is not None:
        problems += _catalog_problems(previous_catalog, catalog_text)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    problems = check(args.contracts)
    for problem in problems:
        print(f"breaking: {problem}", file=sys.stderr)
    if problems:
        print(f"contracts: {len(problems)} breaking change(s); add a new version instead", file=sys.stderr)
        return 1
    print("contracts: every schema is compatible with its previous committed version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
