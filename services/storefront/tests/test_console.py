from __future__ import annotations

from typing import Any

import httpx
from django.test import Client

from console.views import series, waterfall

from .conftest import StandInGateway, log_in


def staff(client: Client) -> None:
    log_in(client, "staff@example.com", "Staff-pass-2026")


def jaeger_trace() -> dict[str, Any]:
    def span(
        span_id: str, parent: str | None, process: str, start: int, duration: int, **tags: Any
    ) -> dict[str, Any]:
        return {
            "traceID": "ab" * 16,
            "spanID": span_id,
            "operationName": f"op-{span_id}",
            "references": [{"refType": "CHILD_OF", "traceID": "ab" * 16, "spanID": parent}] if parent else [],
            "startTime": start,
            "duration": duration,
            "tags": [{"key": k, "type": "string", "value": v} for k, v in tags.items()],
            "processID": process,
        }

    return {
        "data": [
            {
                "traceID": "ab" * 16,
                "spans": [
                    span("2", "1", "p2", 1_000_100, 400),
                    span("1", None, "p1", 1_000_000, 1_000),
                    span("3", "2", "p3", 1_000_200, 100, **{"otel.status_code": "ERROR"}),
                ],
                "processes": {
                    "p1": {"serviceName": "api_gateway", "tags": []},
                    "p2": {"serviceName": "order_service", "tags": []},
                    "p3": {"serviceName": "payment_service", "tags": []},
                },
            }
        ]
    }


def test_the_waterfall_orders_spans_parent_first_with_offsets_and_errors() -> None:
    view = waterfall(jaeger_trace())
    rows = view["rows"]
    assert [r["name"] for r in rows] == ["op-1", "op-2", "op-3"]
    assert [r["depth"] for r in rows] == [0, 1, 2]
    assert rows[0]["left"] == 0
    assert rows[0]["width"] == 100
    assert rows[1]["left"] == 10
    assert rows[1]["duration_ms"] == 0.4
    assert [r["error"] for r in rows] == [False, False, True]
    assert [name for name, _ in view["services"]] == ["api_gateway", "order_service", "payment_service"]
    assert view["duration_ms"] == 1.0


def test_an_empty_trace_is_an_empty_waterfall() -> None:
    assert waterfall({"data": []})["rows"] == []
    assert waterfall(None)["rows"] == []


def test_prometheus_series_are_aligned_for_the_chart() -> None:
    answer = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"outcome": "confirmed"}, "values": [[10, "1"], [20, "2"]]},
                {"metric": {"outcome": "cancelled"}, "values": [[20, "0.5"], [30, "NaN"]]},
            ],
        },
    }
    chart = series(answer)
    assert chart["data"][0] == [10.0, 20.0, 30.0]
    assert chart["data"][1] == [1.0, 2.0, None]
    assert chart["data"][2][:2] == [None, 0.5]
    assert chart["labels"] == ["confirmed", "cancelled"]


def test_the_trace_page_draws_the_spans(client: Client, api: StandInGateway) -> None:
    staff(client)
    api.routes["/api/ops/traces/" + "ab" * 16] = httpx.Response(200, json=jaeger_trace())
    html = client.get(f"/console/traces/{'ab' * 16}/").content.decode()
    assert html.count('class="span"') == 3
    assert 'payment_service · op-3 <span class="muted">0.1 ms</span> (error' in html


def test_a_missing_trace_is_said_in_words(client: Client, api: StandInGateway) -> None:
    staff(client)
    response = client.get("/console/traces/0123/")
    assert response.status_code == 200
    assert "Not found." in response.content.decode()


def test_dead_letters_are_listed_inspected_and_replayed(client: Client, api: StandInGateway) -> None:
    staff(client)
    letter = {
        "id": "orders.dlq:0:5",
        "topic": "orders.dlq",
        "event_type": "order.placed",
        "event_id": "e1",
        "error": "boom",
        "failed_at": "2026-12-05T03:00:00Z",
        "attempts": 3,
        "replayed_at": None,
    }
    api.routes["/api/ops/order_service/dlq/"] = httpx.Response(200, json={"results": [letter]})
    api.routes["/api/ops/order_service/dlq/orders.dlq:0:5/"] = httpx.Response(
        200,
        json={
            **letter,
            "partition": 0,
            "offset": 5,
            "key": "k",
            "consumer_group": "g",
            "original_topic": "orders",
            "headers": {"h": "v"},
            "payload": {"poison": True},
        },
    )
    api.routes["/api/ops/order_service/dlq/orders.dlq:0:5/replay/"] = httpx.Response(
        202, json={"id": letter["id"], "replayed_to": "orders", "replayed_at": "2026-12-05T03:01:00Z"}
    )
    listing = client.get("/console/dlq/", {"service": "order_service"}).content.decode()
    assert "orders.dlq:0:5" in listing
    detail = client.get("/console/dlq/order_service/orders.dlq:0:5/").content.decode()
    assert "&quot;poison&quot;: true" in detail
    replayed = client.post("/console/dlq/order_service/orders.dlq:0:5/replay/", follow=True)
    assert "Replayed to orders." in replayed.content.decode()
    api.routes["/api/ops/order_service/dlq/orders.dlq:0:5/replay/"] = httpx.Response(
        409,
        json={
            "error": {
                "code": "already_replayed",
                "message": "Already replayed.",
                "details": {},
                "trace_id": "t9",
            }
        },
    )
    again = client.post("/console/dlq/order_service/orders.dlq:0:5/replay/", follow=True)
    assert "Already replayed." in again.content.decode()


def test_purge_asks_for_confirmation_first(client: Client, api: StandInGateway) -> None:
    staff(client)
    api.routes["/api/ops/order_service/dlq/purge/"] = httpx.Response(
        200, json={"topic": "orders.dlq", "purged": 2}
    )
    page = client.get("/console/dlq/order_service/purge/", {"topic": "orders.dlq"})
    assert "I understand" in page.content.decode()
    unconfirmed = client.post("/console/dlq/order_service/purge/", {"topic": "orders.dlq"})
    assert unconfirmed.status_code == 200
    assert ("POST", "/api/ops/order_service/dlq/purge/") not in api.calls
    done = client.post(
        "/console/dlq/order_service/purge/", {"topic": "orders.dlq", "confirm": "yes"}, follow=True
    )
    assert "Purged 2 dead letter(s) of orders.dlq." in done.content.decode()


def test_an_unknown_service_is_a_404(client: Client, api: StandInGateway) -> None:
    staff(client)
    assert client.get("/console/dlq/", {"service": "nope"}).status_code == 404


def test_a_customer_is_refused_every_console_page(client: Client, api: StandInGateway) -> None:
    log_in(client)
    for path in ("/console/", "/console/dlq/", "/console/sagas/", "/console/mails/", "/console/traces/ab/"):
        assert client.get(path).status_code == 403, path
