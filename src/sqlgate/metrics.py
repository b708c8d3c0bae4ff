"""Prometheus metrics of one replica, beyond the HTTP API's own (:mod:`sqlgate.api.metrics`).

Every name here is documented in README ("Metrics"). Replicas are told apart by
``sqlgate_replica_info{replica, instance}`` and by the ``replica`` label of the
session gauge; Prometheus adds the pod or target too. Session and statement
figures are read at scrape time from every :class:`~sqlgate.sessions.SessionRegistry`
in the process, so the hot path only bumps a plain integer.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sqlgate.sessions import KINDS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from sqlgate.sessions import SessionRegistry

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REPLICA_INFO = Gauge("sqlgate_replica_info", "This replica's name and instance id (value 1).", ["replica", "instance"])
DECISIONS = Counter("sqlgate_decisions_total", "Policy decisions by outcome.", ["outcome"])
GUARDRAIL_REFUSALS = Counter(
    "sqlgate_guardrail_refusals_total",
    "Statements the guardrails refused (enforced) or would have refused (mode: audit), by class.",
    ["kind", "enforced"],
)
STATEMENT_SECONDS = Histogram(
    "sqlgate_statement_seconds",
    "Statements relayed or run, by protocol and outcome, from the client's request to the last row.",
    ["protocol", "outcome"],
    buckets=LATENCY_BUCKETS,
)
MINT_SECONDS = Histogram(
    "sqlgate_lease_mint_seconds", "Minting a database login, by engine.", ["engine"], buckets=LATENCY_BUCKETS
)
LEASES = Counter("sqlgate_leases_total", "Leases handed out, by how: minted or reused.", ["how"])
VERIFY_SECONDS = Histogram(
    "sqlgate_token_verify_seconds",
    "Verifying an identity token that was not cached, by result.",
    ["result"],
    buckets=LATENCY_BUCKETS,
)
LOGINS_THROTTLED = Counter(
    "sqlgate_logins_throttled_total",
    "Logins refused without verifying the token, their source or subject backing off after failures, by scope.",
    ["scope"],
)
LOGIN_FAILURES_SUMMARISED = Counter(
    "sqlgate_login_failures_summarised_total",
    "Failed or throttled logins counted into a per-source summary record instead of an audit record each.",
)


class SessionCollector(Collector):
    """``sqlgate_sessions`` (live, by kind) and ``sqlgate_session_statements_total`` from the registries."""

    def __init__(self) -> None:
        self.registries: list[tuple[str, SessionRegistry]] = []

    def collect(self) -> Iterator[Metric]:
        """One sample per (replica, kind)."""
        live = GaugeMetricFamily("sqlgate_sessions", "Live sessions by kind.", labels=["replica", "kind"])
        statements = CounterMetricFamily(
            "sqlgate_session_statements", "Statements run in sessions, by kind.", labels=["replica", "kind"]
        )
        for replica, registry in self.registries:
            counts: Tally[str] = Tally(dict.fromkeys(KINDS, 0))
            for session in registry.list():
                counts[session.kind] += 1
            for kind, count in counts.items():
                live.add_metric([replica, kind], count)
            for kind, total in registry.statement_totals().items():
                statements.add_metric([replica, kind], total)
        yield live
        yield statements


SESSIONS = SessionCollector()
REGISTRY.register(SESSIONS)


def watch_sessions(replica: str, registry: SessionRegistry) -> None:
    """Export ``registry``'s sessions under ``replica`` (until :func:`unwatch_sessions`)."""
    SESSIONS.registries.append((replica, registry))


def unwatch_sessions(registry: SessionRegistry) -> None:
    """Stop exporting ``registry``."""
    SESSIONS.registries = [(name, r) for name, r in SESSIONS.registries if r is not registry]
