"""Prometheus metrics of webhook deliveries (exported by ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

DELIVERIES = Counter(
    "sqlgate_webhook_deliveries_total",
    "Webhook deliveries of access-request events by final outcome: delivered, failed (after every retry) "
    "or dropped (the queue was full).",
    ["event", "outcome"],
)
RETRIES = Counter("sqlgate_webhook_retries_total", "Webhook delivery attempts that failed and were retried.", ["event"])
