"""The operations console (staff only): what the gateway's `/api/ops/` endpoints report.

Health of every process; per service the outbox backlog, consumer lag and dead
letters; the dead-letter queues (inspect, replay once, purge after confirmation);
sagas; one trace as a waterfall; live charts from Prometheus; the mail log.
Every call carries the staff member's own token: the services decide (`is_staff`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from shop.gateway import ApiError, Gateway

View = Callable[..., HttpResponse]

# The services whose event backbone the console shows (each mounts /api/ops/<service>/).
SERVICES = ("user_service", "product_service", "order_service", "payment_service", "email_service")
# The named Prometheus queries of the gateway's /api/ops/metrics/ the charts draw.
CHARTS = {
    "orders_by_outcome": "Orders per second, by outcome",
    "latency_p99_by_service": "p99 latency per service (s)",
    "outbox_backlog": "Outbox backlog per service",
    "consumer_lag": "Consumer lag per group",
}
COLOURS = ("#0b5cad", "#b5470b", "#146c2e", "#7a3fb0", "#a8161b", "#00727a", "#6b6b00", "#5a5a5a")


def staff_required(view: View) -> View:
    """Logged-in staff only: others are sent to log in, customers get a 403 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = Gateway(request).user()
        if user is None:
            return redirect(f"{reverse('login')}?next={request.get_full_path()}")
        if not user.get("is_staff"):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _service(name: str) -> str:
    if name not in SERVICES:
        raise Http404
    return name


def _try(request: HttpRequest, method: str, path: str, **kwargs: Any) -> tuple[Any, ApiError | None]:
    """The answer, or None with the error (a panel shows it in place)."""
    try:
        return Gateway(request).call(method, path, **kwargs), None
    except ApiError as error:
        return None, error


# ---------------------------------------------------------------- overview


@require_GET
@staff_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html", {"charts": CHARTS})


@require_GET
@staff_required
def health_panel(request: HttpRequest) -> HttpResponse:
    health, error = _try(request, "GET", "/api/ops/health/")
    return render(request, "console/_health.html", {"health": _health_rows(health), "error": error})


def _health_rows(health: Any) -> list[dict[str, Any]]:
    """Rows {name, status, detail}: the gateway, each service's web process (readiness)
    and the relay, consumer, worker and beat processes each one reports."""
    if not isinstance(health, dict):
        return []
    rows: list[dict[str, Any]] = []
    gateway = health.get("gateway")
    if isinstance(gateway, dict):
        checks = gateway.get("checks", {})
        rows.append(
            {"name": "api_gateway", "status": str(gateway.get("status", "?")), "detail": _cell(checks)}
        )
    for service in health.get("services", []):
        if not isinstance(service, dict):
            continue
        name = str(service.get("service", "?"))
        failed = [k for k, v in (service.get("checks") or {}).items() if v != "ok"]
        detail = service.get("error") or (f"failing: {', '.join(failed)}" if failed else "")
        rows.append(
            {"name": f"{name}.web", "status": "ok" if service.get("ready") else "down", "detail": detail}
        )
        for process in service.get("processes", []):
            if not isinstance(process, dict):
                continue
            age = process.get("heartbeat_age_s")
            rows.append(
                {
                    "name": f"{name}.{process.get('process', '?')}",
                    "status": str(process.get("status", "unknown")),
                    "detail": f"heartbeat {age} s ago" if age is not None else "",
                }
            )
        if service.get("processes_error"):
            rows.append(
                {"name": f"{name} processes", "status": "unknown", "detail": service["processes_error"]}
            )
    return rows


@require_GET
@staff_required
def events_panel(request: HttpRequest) -> HttpResponse:
    panels = []
    for service in SERVICES:
        status, error = _try(request, "GET", f"/api/ops/{service}/events/")
        panels.append({"service": service, "status": status, "error": error})
    return render(request, "console/_events.html", {"panels": panels})


# ---------------------------------------------------------------- dead letters


@require_GET
@staff_required
def dlq(request: HttpRequest) -> HttpResponse:
    service = _service(request.GET.get("service") or "order_service")
    topic = request.GET.get("topic", "").strip()
    listing, error = _try(request, "GET", f"/api/ops/{service}/dlq/", params={"topic": topic})
    letters = (listing or {}).get("results", []) if isinstance(listing, dict) else []
    topics = sorted({letter.get("topic", "") for letter in letters})
    context = {
        "services": SERVICES,
        "service": service,
        "topic": topic,
        "letters": letters,
        "topics": topics,
        "error": error,
    }
    return render(request, "console/dlq.html", context)


@require_GET
@staff_required
def dlq_letter(request: HttpRequest, service: str, letter_id: str) -> HttpResponse:
    letter = Gateway(request).call("GET", f"/api/ops/{_service(service)}/dlq/{letter_id}/")
    payload = letter.get("payload")
    pretty = json.dumps(payload, indent=2, sort_keys=True) if not isinstance(payload, str) else payload
    return render(request, "console/letter.html", {"service": service, "letter": letter, "payload": pretty})


@require_POST
@staff_required
def dlq_replay(request: HttpRequest, service: str, letter_id: str) -> HttpResponse:
    try:
        result = Gateway(request).call("POST", f"/api/ops/{_service(service)}/dlq/{letter_id}/replay/")
    except ApiError as error:
        messages.error(request, error.message, extra_tags=error.trace_id or "")
    else:
        messages.success(request, f"Replayed to {result.get('replayed_to', 'its topic')}.")
    return redirect("console:letter", service=service, letter_id=letter_id)


@staff_required
def dlq_purge(request: HttpRequest, service: str) -> HttpResponse:
    """GET: the confirmation page; POST with confirm: the purge."""
    service = _service(service)
    topic = (request.POST.get("topic") or request.GET.get("topic") or "").strip()
    if request.method == "POST" and request.POST.get("confirm") == "yes" and topic:
        try:
            result = Gateway(request).call(
                "POST", f"/api/ops/{service}/dlq/purge/", json={"topic": topic, "confirm": True}
            )
        except ApiError as error:
            messages.error(request, error.message, extra_tags=error.trace_id or "")
        else:
            messages.success(request, f"Purged {result.get('purged', 0)} dead letter(s) of {topic}.")
        return redirect(f"{reverse('console:dlq')}?service={service}")
    return render(request, "console/purge.html", {"service": service, "topic": topic})


# ---------------------------------------------------------------- sagas, mails


def _sections(report: Any) -> list[dict[str, Any]]:
    """A report's top-level parts, each shown as a table, a list of facts or text."""
    if not isinstance(report, dict):
        return [{"title": "Report", "kind": "text", "value": json.dumps(report, indent=2)}] if report else []
    sections = []
    for key, value in report.items():
        title = key.replace("_", " ").capitalize()
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value for k in row))
            rows = [[_cell(row.get(c)) for c in columns] for row in value]
            sections.append({"title": title, "kind": "table", "columns": columns, "rows": rows})
        elif isinstance(value, dict):
            facts = [(k.replace("_", " "), _cell(v)) for k, v in value.items()]
            sections.append({"title": title, "kind": "facts", "facts": facts})
        else:
            shown = "none" if value in ([], {}, None, "") else _cell(value)
            sections.append({"title": title, "kind": "text", "value": shown})
    return sections


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


@require_GET
@staff_required
def sagas(request: HttpRequest) -> HttpResponse:
    report, error = _try(request, "GET", "/api/ops/order_service/sagas/")
    return render(
        request, "console/report.html", {"title": "Sagas", "sections": _sections(report), "error": error}
    )


@require_GET
@staff_required
def mails(request: HttpRequest) -> HttpResponse:
    report, error = _try(request, "GET", "/api/ops/email_service/mails/")
    return render(
        request, "console/report.html", {"title": "Mail log", "sections": _sections(report), "error": error}
    )


# ---------------------------------------------------------------- traces


def waterfall(document: Any) -> dict[str, Any]:
    """Rows of a Jaeger-shaped trace: each span's offset and width in % of the trace,
    its service and process, its duration and whether it failed, parents first."""
    data = document.get("data") if isinstance(document, dict) else None
    if not data:
        return {"rows": [], "services": [], "duration_ms": 0.0}
    trace = data[0]
    processes = trace.get("processes", {})
    spans = trace.get("spans", [])
    if not spans:
        return {"rows": [], "services": [], "duration_ms": 0.0}
    start = min(int(s["startTime"]) for s in spans)
    end = max(int(s["startTime"]) + int(s.get("duration", 0)) for s in spans)
    total = max(end - start, 1)
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["spanID"] for s in spans}
    for span in spans:
        parent = next(
            (
                r["spanID"]
                for r in span.get("references", [])
                if r.get("refType") == "CHILD_OF" and r["spanID"] in ids
            ),
            None,
        )
        children.setdefault(parent, []).append(span)
    services: list[str] = []
    rows: list[dict[str, Any]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: int(s["startTime"])):
            process = processes.get(span.get("processID"), {})
            service = str(process.get("serviceName", "unknown"))
            if service not in services:
                services.append(service)
            tags = {t.get("key"): t.get("value") for t in span.get("tags", [])}
            tag_process = {t.get("key"): t.get("value") for t in process.get("tags", [])}
            failed = (
                tags.get("error") in (True, "true")
                or str(tags.get("otel.status_code", "")).upper() == "ERROR"
            )
            rows.append(
                {
                    "name": span.get("operationName", ""),
                    "service": service,
                    "process": tag_process.get("service.instance.id")
                    or tag_process.get("process.command")
                    or "",
                    "depth": min(depth, 12),
                    "left": round(100 * (int(span["startTime"]) - start) / total, 3),
                    "width": max(round(100 * int(span.get("duration", 0)) / total, 3), 0.2),
                    "duration_ms": round(int(span.get("duration", 0)) / 1000, 2),
                    "error": failed,
                    "status": tags.get("otel.status_description")
                    or tags.get("http.response.status_code")
                    or "",
                    "colour": COLOURS[services.index(service) % len(COLOURS)],
                }
            )
            walk(span["spanID"], depth + 1)

    walk(None, 0)
    return {
        "rows": rows,
        "services": [(s, COLOURS[i % len(COLOURS)]) for i, s in enumerate(services)],
        "duration_ms": round(total / 1000, 2),
    }


@require_GET
@staff_required
def trace(request: HttpRequest, trace_id: str) -> HttpResponse:
    document, error = _try(request, "GET", f"/api/ops/traces/{trace_id}")
    context = {"trace_id": trace_id, **waterfall(document), "error": error}
    return render(request, "console/trace.html", context)


@require_GET
@staff_required
def trace_lookup(request: HttpRequest) -> HttpResponse:
    trace_id = request.GET.get("trace_id", "").strip().lower()
    if not trace_id:
        return redirect("console:home")
    return redirect("console:trace", trace_id=trace_id)


# ---------------------------------------------------------------- charts


@require_GET
@staff_required
def metric(request: HttpRequest, name: str) -> JsonResponse:
    """A named query's series as uPlot wants them: [[t...], [y...], ...] and their labels."""
    if name not in CHARTS:
        raise Http404
    try:
        answer = Gateway(request).call(
            "GET", "/api/ops/metrics/", params={"query": name, "range_s": 600, "step_s": 10}
        )
    except ApiError as error:
        return JsonResponse({"error": error.message, "trace_id": error.trace_id})
    return JsonResponse(series(answer))


def series(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        return {"data": [[]], "labels": []}
    # The gateway's answer carries Prometheus' `result` at its top level; a raw
    # query_range answer has it under `data`.
    found = answer.get("result") if "result" in answer else answer.get("data", {}).get("result")
    results: list[dict[str, Any]] = found if isinstance(found, list) else []
    stamps = sorted({float(t) for r in results for t, _ in r.get("values", [])})
    index = {t: i for i, t in enumerate(stamps)}
    lines: list[list[float | None]] = []
    labels = []
    for result in results:
        values: list[float | None] = [None] * len(stamps)
        for t, v in result.get("values", []):
            try:
                values[index[float(t)]] = float(v)
            except ValueError:
                values[index[float(t)]] = None
        lines.append(values)
        metric = result.get("metric", {})
        labels.append(", ".join(f"{v}" for k, v in sorted(metric.items()) if k != "__name__") or "value")
    return {"data": [stamps, *lines], "labels": labels}
