"""The REST contracts: each service's OpenAPI document, committed and checked.

`contracts/openapi/<service>.yaml` is what drf-spectacular generates from the
service's code; `contracts/openapi/api_gateway.yaml` is what the gateway
publishes at `/openapi.json` (the services' public routes merged, with the
gateway's own error statuses), built by the gateway's own merge function.

    check_openapi.py generate   write the documents from the code (`make openapi`)
    check_openapi.py check      fail when a committed document differs from the
                                code, or breaks a client of its previous committed
                                version (`make contracts-check`)

A change breaks a client, and is refused, when it removes a path, an operation,
a success status or a response field, makes a response field optional or
nullable, changes a field's type, adds a required request field or parameter,
or drops a value a request enum accepted. Adding routes, optional request
fields, response fields and statuses is compatible. The previous version is
found with git as for the event contracts (`check_compatibility.py`): the
newest commit touching the file whose content differs from the file now.
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from check_compatibility import _git, previous_version

REPO = Path(__file__).resolve().parents[1]
OPENAPI_DIR = Path(__file__).resolve().parent / "openapi"
DJANGO_SERVICES = ("user_service", "product_service", "order_service", "payment_service", "email_service")
GATEWAY = "api_gateway"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# --------------------------------------------------------------------------- generation


def service_document(service: str) -> str:
    """The service's schema as drf-spectacular generates it (warnings are errors)."""
    # A clean environment: the document must not depend on who runs the command.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "SYSTEMROOT") if key in os.environ}
    env["DJANGO_DEBUG"] = "true"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--lang", "en"],
        cwd=REPO / "services" / service,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{service}: schema generation failed:\n{result.stderr}")
    return result.stdout


def gateway_document(documents: dict[str, str]) -> str:
    """What the gateway serves at /openapi.json, from the services' documents."""
    sys.path.insert(0, str(REPO / "services" / GATEWAY))
    from gateway.config import load_settings
    from gateway.docs import merge_documents
    from gateway.ops import OPENAPI_PATHS

    settings = load_settings({})
    prefixes: dict[str, list[str]] = {}
    for route in settings.routes:
        prefixes.setdefault(route.upstream, []).append(route.prefix)
    merged = merge_documents(
        [(name, tuple(prefixes[name]), yaml.safe_load(documents[name])) for name in sorted(prefixes)],
        settings.is_public,
        OPENAPI_PATHS,
    )
    return yaml.safe_dump(merged, sort_keys=False, allow_unicode=True, width=100)


def generate_all() -> dict[str, str]:
    documents = {service: service_document(service) for service in DJANGO_SERVICES}
    documents[GATEWAY] = gateway_document(documents)
    return documents


# --------------------------------------------------------------------------- comparison


def _resolve(document: dict[str, Any], node: Any) -> Any:
    """Follows `$ref`s inside the document (a reference cycle ends as {})."""
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            return {}
        seen.add(ref)
        node = document
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
    return node


class _Comparer:
    def __init__(self, old_doc: dict[str, Any], new_doc: dict[str, Any]) -> None:
        self.old_doc = old_doc
        self.new_doc = new_doc
        self._visited: set[tuple[int, int, str]] = set()

    def _pair(self, old: Any, new: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        old, new = _resolve(self.old_doc, old), _resolve(self.new_doc, new)
        if not isinstance(old, dict) or not isinstance(new, dict):
            return None
        return old, new

    def _common(self, old: dict[str, Any], new: dict[str, Any], where: str, direction: str) -> list[str]:
        problems = []
        if "type" in old and old.get("type") != new.get("type"):
            problems.append(f"{where}: type changed from {old.get('type')} to {new.get('type')}")
        for keyword in ("allOf", "anyOf", "oneOf"):
            old_list, new_list = old.get(keyword, []), new.get(keyword, [])
            if len(old_list) != len(new_list):
                if old_list:
                    problems.append(f"{where}: {keyword} changed its number of branches")
                continue
            for old_branch, new_branch in zip(old_list, new_list, strict=True):
                problems += self.schema(old_branch, new_branch, f"{where}", direction)
        if "items" in old:
            problems += self.schema(old["items"], new.get("items", {}), f"{where}[]", direction)
        return problems

    def schema(self, old_node: Any, new_node: Any, where: str, direction: str) -> list[str]:
        """Why a client of `old_node` breaks on `new_node` (`direction`: request or response)."""
        pair = self._pair(old_node, new_node)
        if pair is None:
            return []
        old, new = pair
        key = (id(old), id(new), direction)
        if key in self._visited:
            return []
        self._visited.add(key)
        problems = self._common(old, new, where, direction)
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        if direction == "response":
            for name in sorted(old_props):
                if name not in new_props:
                    problems.append(f"{where}: response field {name!r} was removed")
                    continue
                if name in old_required and name not in new_required:
                    problems.append(f"{where}: response field {name!r} is no longer always present")
                if not _resolve(self.old_doc, old_props[name]).get("nullable") and _resolve(
                    self.new_doc, new_props[name]
                ).get("nullable"):
                    problems.append(f"{where}: response field {name!r} may now be null")
                problems += self.schema(old_props[name], new_props[name], f"{where}.{name}", direction)
        else:
            for name in sorted(new_required - old_required):
                problems.append(f"{where}: request field {name!r} became required")
            for name in sorted(set(old_props) & set(new_props)):
                problems += self.schema(old_props[name], new_props[name], f"{where}.{name}", direction)
            dropped = [value for value in old.get("enum", []) if value not in new.get("enum", old["enum"])]
            if dropped:
                problems.append(f"{where}: request values {dropped!r} are no longer accepted")
        return problems

    def operation(self, old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
        problems = []
        old_params = {
            (p.get("in"), p.get("name")): p for p in map(self._resolve_old, old.get("parameters", []))
        }
        for parameter in map(self._resolve_new, new.get("parameters", [])):
            if not parameter.get("required"):
                continue
            before = old_params.get((parameter.get("in"), parameter.get("name")))
            if before is None or not before.get("required"):
                problems.append(
                    f"{where}: {parameter.get('in')} parameter {parameter.get('name')!r} became required"
                )
        old_body = self._resolve_old(old.get("requestBody", {}))
        new_body = self._resolve_new(new.get("requestBody", {}))
        if new_body.get("required") and not old_body:
            problems.append(f"{where}: a request body became required")
        old_json = old_body.get("content", {}).get("application/json", {})
        new_json = new_body.get("content", {}).get("application/json", {})
        if old_json and new_body and not new_json:
            problems.append(f"{where}: the JSON request body is no longer accepted")
        elif old_json and new_json:
            problems += self.schema(
                old_json.get("schema"), new_json.get("schema"), f"{where}: request", "request"
            )
        new_responses = new.get("responses", {})
        for status, old_response in sorted(old.get("responses", {}).items()):
            if not str(status).startswith("2"):
                continue  # error statuses share one schema; a status may stop happening
            if status not in new_responses:
                problems.append(f"{where}: response {status} was removed")
                continue
            old_content = self._resolve_old(old_response).get("content", {})
            new_content = self._resolve_new(new_responses[status]).get("content", {})
            for media, old_media in sorted(old_content.items()):
                if media not in new_content:
                    problems.append(f"{where}: response {status} no longer answers {media}")
                    continue
                problems += self.schema(
                    old_media.get("schema"),
                    new_content[media].get("schema"),
                    f"{where}: response {status}",
                    "response",
                )
        return problems

    def _resolve_old(self, node: Any) -> dict[str, Any]:
        value = _resolve(self.old_doc, node)
        return value if isinstance(value, dict) else {}

    def _resolve_new(self, node: Any) -> dict[str, Any]:
        value = _resolve(self.new_doc, node)
        return value if isinstance(value, dict) else {}


def breaking_changes(old_doc: dict[str, Any], new_doc: dict[str, Any]) -> list[str]:
    """Why a client written against `old_doc` would break against `new_doc` (empty: compatible)."""
    comparer = _Comparer(old_doc, new_doc)
    problems: list[str] = []
    new_paths = new_doc.get("paths", {}) or {}
    for path, old_item in sorted((old_doc.get("paths", {}) or {}).items()):
        if path not in new_paths:
            problems.append(f"{path}: the route was removed")
            continue
        for method in HTTP_METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new_paths[path]:
                problems.append(f"{where}: the operation was removed")
                continue
            problems += comparer.operation(old_item[method], new_paths[path][method], where)
    return problems


# --------------------------------------------------------------------------- checks


def stale_documents(openapi_dir: Path, generated: dict[str, str]) -> list[str]:
    """Committed documents that are not what the code generates (with a short diff)."""
    problems = []
    for name, text in sorted(generated.items()):
        path = openapi_dir / f"{name}.yaml"
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = "".join(
                list(
                    difflib.unified_diff(
                        current.splitlines(keepends=True),
                        text.splitlines(keepends=True),
                        f"committed {path.name}",
                        f"generated {path.name}",
                    )
                )[:40]
            )
            problems.append(f"{path.name} is not what the code generates; run `make openapi`\n{diff}")
    return problems


def history_problems(openapi_dir: Path) -> list[str]:
    """Breaking changes of each document against its previous committed version."""
    repo = Path(_git(openapi_dir, "rev-parse", "--show-toplevel").strip()).resolve()
    prefix = openapi_dir.resolve().relative_to(repo).as_posix()
    problems = []
    committed = _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", f"{prefix}/").splitlines()
    for relative in sorted(line for line in committed if line.endswith(".yaml")):
        if not (repo / relative).exists():
            problems.append(f"{relative}: a committed REST contract was deleted")
    for path in sorted(openapi_dir.glob("*.yaml")):
        relative = path.resolve().relative_to(repo).as_posix()
        current = path.read_text()
        previous = previous_version(repo, relative, current)
        if previous is None:
            continue
        problems += [
            f"{path.name}: {problem}"
            for problem in breaking_changes(yaml.safe_load(previous), yaml.safe_load(current))
        ]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "check"], nargs="?", default="check")
    parser.add_argument("--openapi", type=Path, default=OPENAPI_DIR, help="the documents' folder")
    args = parser.parse_args()
    if args.command == "generate":
        args.openapi.mkdir(parents=True, exist_ok=True)
        for name, text in generate_all().items():
            (args.openapi / f"{name}.yaml").write_text(text)
            print(f"openapi: wrote {(args.openapi / f'{name}.yaml').relative_to(REPO)}")
        return 0
    stale = stale_documents(args.openapi, generate_all())
    breaking = history_problems(args.openapi)
    for problem in stale:
        print(f"stale: {problem}", file=sys.stderr)
    for problem in breaking:
        print(f"breaking: {problem}", file=sys.stderr)
    if stale or breaking:
        print(
            f"openapi: {len(stale)} stale document(s), {len(breaking)} breaking change(s); a breaking "
            "change needs a new route (or version) beside the old one",
            file=sys.stderr,
        )
        return 1
    print("openapi: every document is what the code generates and compatible with its previous version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
