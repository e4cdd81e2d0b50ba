"""`/openapi.json`: the public API of every service in one document; `/docs`: Swagger UI on it.

Each upstream's drf-spectacular schema (`/api/schema/?format=json`) is fetched
and merged. Its paths are already gateway paths (services serve under
`/api/<area>/`); only the paths the gateway routes to that upstream are kept,
so `/internal/…` and anything else unrouted is dropped. Components that two
services define differently are renamed with the service's name and their
`$ref`s rewritten. The merged document is cached for a minute (a few seconds
when an upstream could not be reached, which the document names).

Every operation also lists what the gateway itself may answer before (or
instead of) the service, in the platform's error body (`ErrorResponse`, the
same component the services' chassis declares): 400 (a malformed
Content-Length), 401 on routes that are not public, 413, 414, 429, 502, 503, 504.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from .config import Settings
from .ops import OPENAPI_PATHS

logger = logging.getLogger("gateway.docs")

SCHEMA_PATH = "/api/schema/?format=json"
CACHE_S = 60.0
CACHE_DEGRADED_S = 5.0


ERROR_COMPONENT = "ErrorResponse"
# Equal to the chassis' component (libs/comptoir `_schema.ERROR_SCHEMA`), so the merge
# keeps one error component; a service that differs gets renamed, visibly
# (contracts/tests/test_error_schema.py holds them equal).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The platform's error body: a stable code, a message, details, the request id.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable code."},
                "message": {"type": "string"},
                "details": {"description": "Per-field problems for validation errors, else {}."},
                "trace_id": {"type": "string", "nullable": True, "description": "The request id."},
            },
            "required": ["code", "message", "details", "trace_id"],
        }
    },
    "required": ["error"],
}
GATEWAY_ERRORS: dict[str, str] = {
    "400": "The request is not valid (bad_request: a malformed Content-Length), or the service refused it.",
    "413": "The request body is larger than the gateway accepts (payload_too_large).",
    "414": "The URI (path and query) is longer than the gateway accepts (uri_too_long).",
    "429": "Too many requests from this user or address (throttled); Retry-After says when to retry.",
    "502": "The service could not be reached or answered nonsense (bad_gateway).",
    "503": "The service, or token verification, is unavailable (upstream_unavailable, unavailable).",
    "504": "The service did not answer in time (upstream_timeout).",
}
NOT_AUTHENTICATED = "No bearer token, or an invalid one (not_authenticated, authentication_failed)."
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
    }


def add_gateway_responses(paths: dict[str, Any], is_public: Callable[[str, str], bool]) -> None:
    """Adds the statuses the gateway answers itself to every operation that lacks them."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            statuses = dict(GATEWAY_ERRORS)
            if not is_public(method.upper(), path):
                statuses["401"] = NOT_AUTHENTICATED
            for status, description in statuses.items():
                if not (responses.get(status) or {}).get("content"):
                    responses[status] = _error_response(description)
            operation["responses"] = dict(sorted(responses.items()))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _operation_ids(document: dict[str, Any], prefixes: tuple[str, ...]) -> set[str]:
    ids = set()
    for path, item in (document.get("paths", {}) or {}).items():
        if any(path.startswith(prefix) for prefix in prefixes) and isinstance(item, dict):
            for method in _METHODS:
                operation = item.get(method)
                if isinstance(operation, dict) and isinstance(operation.get("operationId"), str):
                    ids.add(operation["operationId"])
    return ids


def _shared_operation_ids(documents: list[tuple[str, tuple[str, ...], dict[str, Any]]]) -> set[str]:
    seen: set[str] = set()
    shared: set[str] = set()
    for _name, prefixes, document in documents:
        ids = _operation_ids(document, prefixes)
        shared |= seen & ids
        seen |= ids
    return shared


def _prefix_operation_ids(item: Any, name: str, shared: set[str]) -> Any:
    if not shared or not isinstance(item, dict):
        return item
    renamed = dict(item)
    for method in _METHODS:
        operation = item.get(method)
        if isinstance(operation, dict) and operation.get("operationId") in shared:
            renamed[method] = {**operation, "operationId": f"{name}_{operation['operationId']}"}
    return renamed


def merge_documents(
    documents: list[tuple[str, tuple[str, ...], dict[str, Any]]],
    is_public: Callable[[str, str], bool] | None = None,
    own_paths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merges (upstream name, routed prefixes, OpenAPI document) into one document.

    An operationId that several services use (the chassis' operations routes) is
    prefixed with each one's name, so every id stays unique; `own_paths` are the
    gateway's own routes.

    With `is_public` (the gateway's public rules), every operation also lists
    the gateway's own error statuses.
    """
    merged: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "Comptoir API",
            "version": "1.0.0",
            "description": "Every public route of the platform, served through the API gateway.",
        },
        "paths": {},
        "components": {"schemas": {ERROR_COMPONENT: copy.deepcopy(ERROR_SCHEMA)}} if is_public else {},
        "tags": [],
    }
    seen_tags: set[str] = set()
    shared_ids = _shared_operation_ids(documents)
    for name, prefixes, document in documents:
        merged["openapi"] = str(document.get("openapi", merged["openapi"]))
        components = document.get("components", {}) or {}
        renames: dict[str, str] = {}
        for kind, items in components.items():
            existing = merged["components"].get(kind, {})
            for component, value in (items or {}).items():
                if component in existing and existing[component] != value:
                    renames[f"#/components/{kind}/{component}"] = (
                        f"#/components/{kind}/{_camel(name)}{component}"
                    )
        document = _rewrite_refs(document, renames) if renames else document
        for kind, items in (document.get("components", {}) or {}).items():
            target = merged["components"].setdefault(kind, {})
            for component, value in (items or {}).items():
                new_ref = renames.get(f"#/components/{kind}/{component}")
                target[new_ref.rsplit("/", 1)[1] if new_ref else component] = value
        for path, item in (document.get("paths", {}) or {}).items():
            if any(path.startswith(prefix) for prefix in prefixes):
                merged["paths"][path] = _prefix_operation_ids(item, name, shared_ids)
        for tag in document.get("tags", []) or []:
            if isinstance(tag, dict) and tag.get("name") not in seen_tags:
                seen_tags.add(str(tag.get("name")))
                merged["tags"].append(tag)
    merged["paths"].update(copy.deepcopy(own_paths or {}))
    merged["paths"] = dict(sorted(merged["paths"].items()))
    if is_public is not None:
        add_gateway_responses(merged["paths"], is_public)
    if not merged["tags"]:
        del merged["tags"]
    return merged


class DocsMerger:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session
        self._cached: dict[str, Any] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._timeout = aiohttp.ClientTimeout(total=5)

    async def _fetch(self, name: str) -> dict[str, Any] | None:
        url = self.settings.upstreams[name].url + SCHEMA_PATH
        try:
            async with self.session.get(
                url, timeout=self._timeout, headers={"Accept": "application/json"}
            ) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            logger.warning("schema fetch failed", extra={"upstream": name, "error.message": repr(error)})
            return None
        return document if isinstance(document, dict) else None

    async def openapi(self) -> dict[str, Any]:
        async with self._lock:
            if self._cached is not None and time.monotonic() < self._expires:
                return self._cached
            prefixes: dict[str, list[str]] = {}
            for route in self.settings.routes:
                prefixes.setdefault(route.upstream, []).append(route.prefix)
            names = sorted(prefixes)
            fetched = await asyncio.gather(*(self._fetch(name) for name in names))
            documents = [
                (name, tuple(prefixes[name]), doc)
                for name, doc in zip(names, fetched, strict=True)
                if doc is not None
            ]
            merged = merge_documents(documents, self.settings.is_public, OPENAPI_PATHS)
            missing = [name for name, doc in zip(names, fetched, strict=True) if doc is None]
            if missing:
                merged["info"]["x-unavailable-services"] = missing
            self._cached = merged
            self._expires = time.monotonic() + (CACHE_DEGRADED_S if missing else CACHE_S)
            return merged


# Swagger UI is served by the gateway itself from the npm package swagger-ui-dist
# (services/api_gateway/package-lock.json pins it; `make assets` installs it, the
# image copies it): the page loads nothing from another host.
DOCS_ASSETS_DIR = Path(
    os.environ.get(
        "GATEWAY_DOCS_ASSETS",
        str(Path(__file__).resolve().parent.parent / "node_modules" / "swagger-ui-dist"),
    )
)
ASSETS_PREFIX = "/docs/assets/"
SWAGGER_INIT = (
    'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n'
)
# The only files served, with their media types.
DOCS_ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "init.js": "text/javascript; charset=utf-8",
}

DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Comptoir API</title>
<link rel="stylesheet" href="{ASSETS_PREFIX}swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_PREFIX}favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<p><noscript>The raw document is at <a href="/openapi.json">/openapi.json</a>.</noscript></p>
<script src="{ASSETS_PREFIX}swagger-ui-bundle.js"></script>
<script src="{ASSETS_PREFIX}init.js"></script>
</body>
</html>
"""

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


@functools.cache
def docs_asset(name: str) -> bytes | None:
    """The bytes of one of DOCS_ASSETS, read once; None for any other name or a missing file."""
    if name not in DOCS_ASSETS:
        return None
    if name == "init.js":
        return SWAGGER_INIT.encode()
    try:
        return (DOCS_ASSETS_DIR / name).read_bytes()
    except OSError:
        logger.warning(
            "Swagger UI asset missing (run `make assets`)", extra={"file.path": str(DOCS_ASSETS_DIR / name)}
        )
        return None
