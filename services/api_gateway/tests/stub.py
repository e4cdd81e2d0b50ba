"""A stand-in upstream service: a bare ASGI app run by uvicorn in its own process.

    STUB_NAME=accounts STUB_AREAS=users,orders STUB_JWKS_FILE=/tmp/jwks.json \
        python -m uvicorn tests.stub:app --port 9001

- `GET /api/users/auth/jwks/`: the JSON in `STUB_JWKS_FILE` (it plays user_service's part).
- `GET /api/schema/`: an OpenAPI document with a few `/api/<area>/…` paths per
  area in `STUB_AREAS`, one `/internal/…` path, and components named alike in
  every stub but shaped differently.
- `/health/live`, `/health/ready`: 200.
- `/_stub/requests`: what this process received (method, path, headers), so a
  test can prove a request did or did not reach it; `POST /_stub/reset` forgets.
- anything else: 200 with a JSON echo of the request. Query parameters:
  `sleep=<s>` answers late, `status=<code>` answers with that status,
  `size=<n>` answers with n bytes (streamed), `cookie=1` sets a cookie.
  `STUB_RECORD=0` turns the request log off (benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

NAME = os.environ.get("STUB_NAME", "stub")
AREAS = [area for area in os.environ.get("STUB_AREAS", "").split(",") if area]
RECORD = os.environ.get("STUB_RECORD", "1") != "0"
SEEN: deque[dict[str, Any]] = deque(maxlen=5000)


def _jwks() -> bytes:
    path = os.environ.get("STUB_JWKS_FILE")
    if not path:
        return b'{"keys": []}'
    with open(path, "rb") as handle:
        return handle.read()


def _schema() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for area in AREAS:
        paths[f"/api/{area}/"] = {
            "get": {
                "operationId": f"{area}_list",
                "tags": [area],
                "responses": {
                    "200": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}
                    }
                },
            }
        }
        paths[f"/api/{area}/{{id}}/"] = {
            "get": {
                "operationId": f"{area}_retrieve",
                "tags": [area],
                "responses": {"404": {"$ref": "#/components/responses/NotFound"}},
            }
        }
    paths[f"/internal/{NAME}/secret/"] = {"post": {"operationId": f"{NAME}_internal", "responses": {}}}
    paths["/api/schema/"] = {"get": {"operationId": "schema_retrieve", "responses": {}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": NAME, "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": {
                "Item": {"type": "object", "properties": {f"{NAME}_field": {"type": "string"}}},
                "Shared": {"type": "object", "properties": {"id": {"type": "integer"}}},
            },
            "responses": {"NotFound": {"description": f"{NAME}: no such thing"}},
            "securitySchemes": {"jwtAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "tags": [{"name": area} for area in AREAS],
    }


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read(receive: Receive) -> int:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return size
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return size


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    method: str = scope["method"]
    if path in ("/health/live", "/health/ready"):
        await _send(send, 200, json.dumps({"status": "ok", "service": NAME}).encode())
        return
    if path == "/_stub/requests":
        await _send(send, 200, json.dumps(list(SEEN)).encode())
        return
    if path == "/_stub/reset":
        SEEN.clear()
        await _send(send, 204, b"")
        return
    if path == "/api/schema/":
        await _send(send, 200, json.dumps(_schema()).encode())
        return
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    # Recorded as the request arrives, before its body: a test can see what an
    # upstream was asked while the body is still on its way.
    seen: dict[str, Any] = {"method": method, "path": path, "headers": headers, "body_bytes": None}
    if RECORD:
        SEEN.append(seen)
    body_bytes = await _read(receive)
    seen["body_bytes"] = body_bytes
    if path == "/api/users/auth/jwks/":
        await _send(send, 200, _jwks())
        return
    query = {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}
    if "sleep" in query:
        await asyncio.sleep(float(query["sleep"]))
    status = int(query.get("status", "200"))
    if "size" in query:
        size = int(query["size"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        chunk = b"x" * 16384
        remaining = size
        while remaining > 0:
            part = chunk[: min(remaining, len(chunk))]
            remaining -= len(part)
            await send({"type": "http.response.body", "body": part, "more_body": remaining > 0})
        return
    extra: list[tuple[bytes, bytes]] = [(b"server", b"stub-server"), (b"x-powered-by", b"stub")]
    if query.get("cookie") == "1":
        extra.append((b"set-cookie", b"session=from-upstream; Path=/"))
    echo = {
        "stub": NAME,
        "method": method,
        "path": path,
        "query": scope["query_string"].decode(),
        "headers": headers,
        "body_bytes": body_bytes,
    }
    await _send(send, status, json.dumps(echo).encode(), extra)
