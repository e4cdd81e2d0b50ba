from __future__ import annotations

import io
import json
import logging
import logging.config

from comptoir import logging_config, request_id_var


def test_log_records_are_json_lines_with_service_and_request_id() -> None:
    config = logging_config("order_service")
    logging.config.dictConfig(config)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    token = request_id_var.set("req-42")
    try:
        logging.getLogger("orders.saga").warning("stock %s", "reserved")
    finally:
        request_id_var.reset(token)
    logging.getLogger("orders.saga").info("outside a request")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {k: first[k] for k in ("service", "level", "logger", "message", "request_id")} == {
        "service": "order_service",
        "level": "WARNING",
        "logger": "orders.saga",
        "message": "stock reserved",
        "request_id": "req-42",
    }
    assert "timestamp" in first
    assert second["request_id"] is None
    assert second["message"] == "outside a request"
