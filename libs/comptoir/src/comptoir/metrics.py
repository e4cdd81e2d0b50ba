"""Metrics a service records itself (the rest comes from the chassis).

from comptoir import metrics
metrics.saga_finished(mode="orchestration", status="CANCELLED", reason="insufficient_funds",
                      duration_s=elapsed)
metrics.register_saga_backlog(lambda: [("orchestration", pending, oldest_age_s)])
metrics.reconciliation_reported({"wallet_ledger_mismatch": 0, "order_pending_past_deadline": 2})
"""

from __future__ import annotations

from ._metrics import (
    reconciliation_reported,
    register_saga_backlog,
    render,
    saga_finished,
    serve_metrics,
)

__all__ = ["reconciliation_reported", "register_saga_backlog", "render", "saga_finished", "serve_metrics"]
