"""`/openapi.json`: the public API of every service in one document; `/docs`: Swagger UI on it.

Each upstream's drf-spectacular schema (`/api/schema/?format=json`) is fetched
and merged. Its paths are already gateway paths (services serve under
`/api/<area>/`); only the paths the gateway routes to that upstream are kept,
so `/internal/…` and anything else unrouted is dropped. Components that two
services define differently are renamed with the service's name and their
`$ref`s rewritten. The merged document is cached for a minute (a few seconds
when an upstream could not be reached, which the document names).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from typing import Any

import aiohttp

from .config import Settings

logger = logging.getLogger("gateway.docs")

SCHEMA_PATH = "/api/schema/?format=json"
CACHE_S = 60.0
CACHE_DEGRADED_S = 5.0


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


def merge_documents(documents: list[tuple[str, tuple[str, ...], dict[str, Any]]]) -> dict[str, Any]:
    """Merges (upstream name, routed prefixes, OpenAPI document) into one document."""
    merged: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "Comptoir API",
            "version": "1.0.0",
            "description": "Every public route of the platform, served through the API gateway.",
        },
        "paths": {},
        "components": {},
        "tags": [],
    }
    seen_tags: set[str] = set()
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
                merged["paths"][path] = item
        for tag in document.get("tags", []) or []:
            if isinstance(tag, dict) and tag.get("name") not in seen_tags:
                seen_tags.add(str(tag.get("name")))
                merged["tags"].append(tag)
    merged["paths"] = dict(sorted(merged["paths"].items()))
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
            merged = merge_documents(documents)
            missing = [name for name, doc in zip(names, fetched, strict=True) if doc is None]
            if missing:
                merged["info"]["x-unavailable-services"] = missing
            self._cached = merged
            self._expires = time.monotonic() + (CACHE_DEGRADED_S if missing else CACHE_S)
            return merged


SWAGGER_VERSION = "5.17.14"
_SWAGGER_INIT = (
    'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});'
)
_INIT_HASH = base64.b64encode(hashlib.sha256(_SWAGGER_INIT.encode()).digest()).decode()
CDN = "https://cdn.jsdelivr.net"

DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Comptoir API</title>
<link rel="stylesheet" href="{CDN}/npm/swagger-ui-dist@{SWAGGER_VERSION}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<p><noscript>The raw document is at <a href="/openapi.json">/openapi.json</a>.</noscript></p>
<script src="{CDN}/npm/swagger-ui-dist@{SWAGGER_VERSION}/swagger-ui-bundle.js"></script>
<script>{_SWAGGER_INIT}</script>
</body>
</html>
"""

DOCS_CSP = (
    f"default-src 'none'; script-src {CDN} 'sha256-{_INIT_HASH}'; style-src {CDN}; "
    f"img-src 'self' data: {CDN}; connect-src 'self'; frame-ancestors 'none'"
)
