"""One order placed through the gateway is one trace (read back from the trace
backend, not from memory) and its log lines, in every process, carry that trace id."""

from __future__ import annotations

from conftest import REPO_ROOT, PlacedOrder, log_lines_with, trace_spans
from platform_client import wait_for

GATEWAY_TRACES = (
    "configure_tracing"
    in (REPO_ROOT / "services" / "api_gateway" / "gateway" / "observability.py").read_text()
)


def _services_and_kinds(trace_id: str) -> tuple[set[str], set[str], int]:
    spans, processes = trace_spans(trace_id)
    services = {processes[span["processID"]] for span in spans}
    kinds = set()
    for span in spans:
        tags = {tag["key"]: tag["value"] for tag in span.get("tags", [])}
        kind = str(tags.get("span.kind", ""))
        if tags.get("messaging.system") == "kafka":
            kinds.add(f"kafka-{kind}")
        if str(span["operationName"]).startswith(("run/", "apply_async/")):
            kinds.add(f"celery-{span['operationName'].split('/', 1)[0]}")
        if kind == "server":
            kinds.add("http-server")
        if kind == "client" and ("http.request.method" in tags or "http.method" in tags):
            kinds.add("http-client")
    return services, kinds, len(spans)


def test_one_order_is_one_trace_from_the_gateway_to_the_mail(placed_order: PlacedOrder) -> None:
    expected_services = {"order_service", "product_service", "payment_service", "email_service"}
    if GATEWAY_TRACES:
        expected_services.add("api_gateway")
    expected_kinds = {"http-server", "http-client", "kafka-producer", "kafka-consumer", "celery-run"}

    def complete() -> tuple[set[str], set[str], int] | None:
        services, kinds, count = _services_and_kinds(placed_order.trace_id)
        return (services, kinds, count) if expected_services <= services and expected_kinds <= kinds else None

    services, kinds, count = wait_for(
        complete, timeout_s=60, what=f"the spans of trace {placed_order.trace_id}", interval_s=1.0
    )
    assert placed_order.order["status"] in {"CONFIRMED", "CANCELLED"}
    assert count >= 10
    assert expected_services <= services
    assert expected_kinds <= kinds


def test_every_process_on_the_path_logs_with_the_trace_id(placed_order: PlacedOrder) -> None:
    wanted = {"api_gateway.web", "order_service.web", "order_service.worker"}

    def logged() -> dict[str, list[dict[str, object]]] | None:
        found = log_lines_with(placed_order.trace_id)
        consumers = {name for name in found if name.endswith(".consumer")}
        return found if wanted <= set(found) and len(consumers) >= 2 else None

    found = wait_for(logged, timeout_s=60, what="log lines carrying the trace id", interval_s=1.0)
    for process, records in found.items():
        for record in records:
            assert record["trace"] == {"id": placed_order.trace_id}, (process, record)
            assert isinstance(record["span"], dict)
            assert record["service"] == {"name": process.split(".", 1)[0]}
