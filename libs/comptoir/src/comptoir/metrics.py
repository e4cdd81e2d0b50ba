"""Metrics a service records itself (the rest comes from the chassis).

from comptoir import metrics
metrics.register_scrape_collector(collector)  # read on each scrape of /metrics
metrics.reconciliation_reported({"wallet_ledger_mismatch": 0, "order_pending_past_deadline": 2})
"""

from __future__ import annotations

from ._metrics import reconciliation_reported, register_scrape_collector, render, serve_metrics

__all__ = ["reconciliation_reported", "register_scrape_collector", "render", "serve_metrics"]
