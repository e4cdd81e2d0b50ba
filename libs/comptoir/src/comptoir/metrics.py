"""Metrics a service records itself (the rest comes from the chassis).

from comptoir import metrics
metrics.saga_finished(mode="orchestration", status="CANCELLED", reason="insufficient_funds",
                      duration_s=elapsed)
metrics.register_saga_backlog(lambda: [("orchestration", pending, oldest_age_s)])
"""

from __future__ import annotations

from ._metrics import register_saga_backlog, render, saga_finished, serve_metrics

__all__ = ["register_saga_backlog", "render", "saga_finished", "serve_metrics"]
