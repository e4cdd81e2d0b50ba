"""The gateway's own staff-only operations routes (the services' own are under
`/api/ops/<service>/`, forwarded like any other route):

- `GET /api/ops/health/`: every upstream's readiness, and what each reports of its
  relay, consumer, worker and beat processes (`/api/ops/<service>/processes/`);
- `GET /api/ops/traces/<trace id>`: one trace from the trace backend's Jaeger
  query API (`/api/traces/<id>`);
- `GET /api/ops/traces/?service=&operation=&limit=&tags=&lookback_s=`: the newest
  matching traces, the same way;
- `GET /api/ops/metrics/?query=<name>&range_s=&step_s=`: Prometheus `query_range`
  of one named query of `METRIC_QUERIES`.

Callers pass the same gates as a forwarded request (token verified and not
revoked, rate limit) and must be staff (`is_staff` in the access token). The
browser never sends PromQL: it names one query of a fixed list. Backends that do
not answer give a 503 in the platform's error body, a trace not found a 404.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from multidict import CIMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .config import Settings
from .context import context_of
from .errors import ErrorCode, GatewayError, send_error
from .proxy import Proxy

HEALTH_PATH = "/api/ops/health/"
TRACES_PATH = "/api/ops/traces/"
METRICS_PATH = "/api/ops/metrics/"

# Named queries the console may chart: never PromQL from the browser.
METRIC_QUERIES: dict[str, str] = {
    "orders_by_outcome": "sum by (mode, status) (rate(comptoir_saga_finished_total[1m]))",
    "cancellations_by_reason": 'sum by (reason) (rate(comptoir_saga_finished_total{status="CANCELLED"}[5m]))',
    "latency_p99_by_service": (
        "histogram_quantile(0.99, sum by (service, le) "
        "(rate(comptoir_http_request_duration_seconds_bucket[1m])))"
    ),
    "gateway_latency_p99": (
        "histogram_quantile(0.99, sum by (le) (rate(gateway_request_duration_seconds_bucket[1m])))"
    ),
    "gateway_requests_by_status": "sum by (status) (rate(gateway_requests_total[1m]))",
    "outbox_backlog": "sum by (service) (comptoir_outbox_pending_messages)",
    "outbox_oldest_pending_age": "max by (service) (comptoir_outbox_oldest_pending_age_seconds)",
    "consumer_lag": "sum by (service, group) (comptoir_consumer_lag)",
    "dead_letters": "sum by (service, topic) (comptoir_dlq_messages)",
}
RANGE_S = (60, 7 * 24 * 3600, 900)  # min, max, default
STEP_S = (1, 3600, 15)
MAX_POINTS = 11_000  # Prometheus refuses more points per series
TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")
TRACE_LIMIT = (1, 100, 20)
LOOKBACK_S = (60, 7 * 24 * 3600, 3600)
NAME = re.compile(r"^[\w.\-:/ ]{1,200}$")


def _bad_request(message: str, **details: Any) -> GatewayError:
    return GatewayError(400, ErrorCode.BAD_REQUEST, message, details=details)


def _int_param(request: Request, name: str, bounds: tuple[int, int, int]) -> int:
    low, high, default = bounds
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad_request(f"{name} must be a whole number from {low} to {high}.", **{name: raw})
    return value


class Operations:
    """ASGI handler of the gateway's own `/api/ops/` routes."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        proxy: Proxy,
        readiness: Callable[[], Awaitable[dict[str, str]]],
    ) -> None:
        self.settings = settings
        self.session = session
        self.proxy = proxy
        self.readiness = readiness
        self.timeout = aiohttp.ClientTimeout(total=settings.ops_timeout_s)

    @staticmethod
    def handles(path: str) -> bool:
        return path in (HEALTH_PATH, METRICS_PATH) or path.startswith(TRACES_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = context_of(scope)
        path: str = scope["path"]
        context.route = TRACES_PATH if path.startswith(TRACES_PATH) else path
        request = Request(scope, receive)
        try:
            await self.proxy.admit_staff(scope)
            if scope["method"] not in ("GET", "HEAD"):
                raise GatewayError(405, ErrorCode.METHOD_NOT_ALLOWED, "Method not allowed.")
            if path == HEALTH_PATH:
                response = await self.health(request)
            elif path == METRICS_PATH:
                response = await self.metrics(request)
            elif path == TRACES_PATH:
                response = await self.find_traces(request)
            else:
                response = await self.trace(path.removeprefix(TRACES_PATH))
        except GatewayError as error:
            context.error_code = error.code
            await send_error(
                send,
                error.status,
                error.code,
                error.message,
                trace_id=context.request_id,
                details=error.details,
                headers=error.headers,
            )
            return
        response.headers["Cache-Control"] = "no-store"
        await response(scope, receive, send)

    # Health ----------------------------------------------------------------------------------

    def _forwarded_headers(self, request: Request) -> CIMultiDict[str]:
        context = context_of(request.scope)
        headers: CIMultiDict[str] = CIMultiDict(
            {"X-Request-ID": context.request_id, "traceparent": context.traceparent}
        )
        authorization = request.headers.get("authorization")
        if authorization:
            headers["Authorization"] = authorization
        return headers

    async def _get_json(self, url: str, headers: CIMultiDict[str] | None = None) -> tuple[int, Any]:
        async with self.session.get(url, headers=headers, timeout=self.timeout) as response:
            raw = await response.read()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, None

    async def _service_health(self, name: str, url: str, headers: CIMultiDict[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"service": name, "ready": False, "checks": {}, "processes": []}
        try:
            status, body = await self._get_json(url + "/health/ready")
            entry["ready"] = status == 200
            entry["checks"] = body.get("checks", {}) if isinstance(body, dict) else {}
            if status != 200 and not entry["checks"]:
                entry["error"] = f"status {status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            entry["error"] = f"unreachable: {type(error).__name__}"
            return entry
        try:
            status, body = await self._get_json(f"{url}/api/ops/{name}/processes/", headers)
            if status == 200 and isinstance(body, dict):
                entry["processes"] = body.get("processes", [])
            else:
                entry["processes_error"] = f"status {status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            entry["processes_error"] = f"unreachable: {type(error).__name__}"
        return entry

    async def health(self, request: Request) -> Response:
        headers = self._forwarded_headers(request)
        names = sorted(self.settings.upstreams)
        services, gateway_checks = await asyncio.gather(
            asyncio.gather(
                *(self._service_health(n, self.settings.upstreams[n].url, headers) for n in names)
            ),
            self.readiness(),
        )
        degraded = (
            any(
                not service["ready"]
                or any(process.get("status") not in ("ok", "unknown") for process in service["processes"])
                for service in services
            )
            or gateway_checks.get("redis", "ok") != "ok"
        )
        return JSONResponse(
            {
                "status": "degraded" if degraded else "ok",
                "gateway": {"status": "ok", "checks": gateway_checks},
                "services": services,
            }
        )

    # Traces ----------------------------------------------------------------------------------

    async def _traces_backend(self, path: str, params: dict[str, str]) -> Response:
        url = self.settings.traces_url + path
        try:
            async with self.session.get(url, params=params, timeout=self.timeout) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise GatewayError(
                503,
                ErrorCode.UNAVAILABLE,
                "The trace backend did not answer; retry shortly.",
                details={"reason": type(error).__name__},
            ) from None
        if status == 404:
            raise GatewayError(404, ErrorCode.NOT_FOUND, "No such trace in the trace backend.")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status != 200 or not isinstance(body, dict):
            raise GatewayError(
                502,
                ErrorCode.BAD_GATEWAY,
                "The trace backend sent an unexpected answer.",
                details={"status": status},
            )
        return JSONResponse(body)

    async def trace(self, trace_id: str) -> Response:
        if not TRACE_ID.match(trace_id):
            raise GatewayError(404, ErrorCode.NOT_FOUND, "A trace id is 1 to 32 hexadecimal digits.")
        return await self._traces_backend(f"/api/traces/{trace_id.lower()}", {})

    async def find_traces(self, request: Request) -> Response:
        service = request.query_params.get("service", "")
        if not NAME.match(service):
            raise _bad_request("Name a service: ?service=<name> (as the trace backend knows it).")
        params = {"service": service, "limit": str(_int_param(request, "limit", TRACE_LIMIT))}
        operation = request.query_params.get("operation")
        if operation:
            if not NAME.match(operation):
                raise _bad_request("operation is a span name of at most 200 characters.")
            params["operation"] = operation
        tags = request.query_params.get("tags")
        if tags:
            try:
                parsed = json.loads(tags)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in parsed.items()
            ):
                raise _bad_request('tags is a JSON object of names to values, e.g. {"error":"true"}.')
            params["tags"] = json.dumps(
                {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in parsed.items()}
            )
        lookback_s = _int_param(request, "lookback_s", LOOKBACK_S)
        end_us = int(time.time() * 1_000_000)
        params["start"] = str(end_us - lookback_s * 1_000_000)
        params["end"] = str(end_us)
        return await self._traces_backend("/api/traces", params)

    # Metrics ---------------------------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        name = request.query_params.get("query", "")
        if name not in METRIC_QUERIES:
            raise GatewayError(
                400,
                ErrorCode.BAD_REQUEST,
                "query names one of the console's charts (no PromQL).",
                details={"query": name, "known": sorted(METRIC_QUERIES)},
            )
        range_s = _int_param(request, "range_s", RANGE_S)
        step_s = _int_param(request, "step_s", STEP_S)
        if range_s / step_s > MAX_POINTS:
            raise _bad_request(f"range_s / step_s must be at most {MAX_POINTS} points.")
        end = time.time()
        params = {
            "query": METRIC_QUERIES[name],
            "start": f"{end - range_s:.3f}",
            "end": f"{end:.3f}",
            "step": str(step_s),
        }
        try:
            status, body = await self._get_json_params(
                self.settings.prometheus_url + "/api/v1/query_range", params
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise GatewayError(
                503,
                ErrorCode.UNAVAILABLE,
                "Prometheus did not answer; retry shortly.",
                details={"reason": type(error).__name__},
            ) from None
        if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise GatewayError(
                502,
                ErrorCode.BAD_GATEWAY,
                "Prometheus refused the query.",
                details={"status": status, "error": body.get("error") if isinstance(body, dict) else None},
            )
        data = body.get("data", {})
        return JSONResponse(
            {
                "query": name,
                "promql": METRIC_QUERIES[name],
                "range_s": range_s,
                "step_s": step_s,
                "result_type": data.get("resultType"),
                "result": data.get("result", []),
            }
        )

    async def _get_json_params(self, url: str, params: dict[str, str]) -> tuple[int, Any]:
        async with self.session.get(url, params=params, timeout=self.timeout) as response:
            raw = await response.read()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, None


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def _operation(
    operation_id: str,
    summary: str,
    parameters: list[dict[str, Any]],
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["ops"],
            "security": [{"jwtAuth": []}],
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": "The report (see the gateway's README, ops API).",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "403": _error("The token is not a staff member's (permission_denied)."),
                **{status: _error(description) for status, description in (errors or {}).items()},
            },
        }
    }


def _query(name: str, kind: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "in": "query",
        "name": name,
        "required": required,
        "schema": {"type": kind},
        "description": description,
    }


# The gateway's own operations routes, as the merged OpenAPI document lists them.
OPENAPI_PATHS: dict[str, Any] = {
    HEALTH_PATH: _operation(
        "ops_health",
        "Every upstream's readiness and its processes (staff)",
        [],
    ),
    TRACES_PATH: _operation(
        "ops_traces_list",
        "The newest traces of a service, from the trace backend (Jaeger query API shape) (staff)",
        [
            _query("service", "string", "The service name as the trace backend knows it.", required=True),
            _query("operation", "string", "A span name."),
            _query("limit", "integer", "1-100, default 20."),
            _query("tags", "string", 'A JSON object of span tags, e.g. {"error":"true"}.'),
            _query("lookback_s", "integer", "How far back, 60 s to 7 days, default 3600."),
        ],
    ),
    TRACES_PATH + "{trace_id}": _operation(
        "ops_traces_retrieve",
        "One trace, from the trace backend (Jaeger query API shape) (staff)",
        [
            {
                "in": "path",
                "name": "trace_id",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{1,32}$"},
            }
        ],
        {"404": "No such trace in the trace backend, or not a trace id (not_found)."},
    ),
    METRICS_PATH: _operation(
        "ops_metrics",
        "One named Prometheus range query of the console's charts (staff)",
        [
            {
                "in": "query",
                "name": "query",
                "required": True,
                "schema": {"type": "string", "enum": sorted(METRIC_QUERIES)},
            },
            _query("range_s", "integer", "60 s to 7 days, default 900."),
            _query("step_s", "integer", "1-3600 s, default 15; at most 11000 points."),
        ],
    ),
}
