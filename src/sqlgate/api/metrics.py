"""Prometheus metrics of the HTTP API (exported by ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("sqlgate_api_requests_total", "HTTP API requests by route and status.", ["route", "status"])
QUERY_SECONDS = Histogram(
    "sqlgate_api_query_seconds",
    "Duration of statements run through the HTTP API and MCP.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SESSIONS = Gauge("sqlgate_api_running_queries", "HTTP API and MCP queries running now (live http sessions).")
DENIALS = Counter("sqlgate_api_denials_total", "Queries refused, by what refused them.", ["by"])
