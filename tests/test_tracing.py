"""OpenTelemetry spans for login, decide, mint and each statement, exported to an in-memory exporter."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlgate import tracing
from tests.gateway import DEMO_POLICY, RunningGateway
from tests.pgserver import PgServer

memory = pytest.importorskip(
    "opentelemetry.sdk.trace.export.in_memory_span_exporter", reason="needs opentelemetry-sdk (sqlgate[otel])"
)


@pytest.fixture
def exporter(pg_server: PgServer, pg_database: str, tmp_path: Path) -> Iterator[tuple[Any, RunningGateway]]:
    """Tracing to memory, and a gateway."""
    spans = memory.InMemorySpanExporter()
    tracing.configure("replica-under-test", exporter=spans)
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    try:
        yield spans, running
    finally:
        running.stop()
        tracing.shutdown()


def test_a_session_leaves_login_decide_mint_and_statement_spans(exporter: tuple[Any, RunningGateway]) -> None:
    """One psql-like session: each span carries the replica, and the ids it can know, never the token."""
    spans, gateway = exporter
    token = gateway.token("alice")
    with psycopg.connect(**gateway.conninfo("alice", token)) as conn:
        conn.execute("SELECT count(*) FROM orders").fetchone()
    by_name: dict[str, list[Any]] = {}
    for span in spans.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    assert {"sqlgate.login", "sqlgate.decide", "sqlgate.mint", "sqlgate.statement"} <= set(by_name)
    principal = by_name["sqlgate.login"][0].attributes["sqlgate.principal"]
    assert principal.endswith("alice") or "alice" in principal
    assert by_name["sqlgate.decide"][0].attributes["sqlgate.outcome"] == "allow"
    mint = by_name["sqlgate.mint"][0].attributes
    assert mint["sqlgate.database"] == "demo"
    assert len(str(mint["sqlgate.lease_id"])) == 32
    statements = [s.attributes for s in by_name["sqlgate.statement"]]
    assert all(a["sqlgate.replica"] == "replica-under-test" for a in statements)
    assert any(
        a.get("sqlgate.lease_id") == mint["sqlgate.lease_id"] and a.get("sqlgate.session_id") for a in statements
    )
    for span in spans.get_finished_spans():
        assert token not in str(dict(span.attributes or {}))


def test_without_configuration_nothing_is_recorded() -> None:
    """Off by default: hooks are no-ops."""
    assert not tracing.enabled()
    with tracing.span("sqlgate.decide", {"sqlgate.database": "demo"}) as current:
        assert current is None
    tracing.record_statement("pgwire", "success", 1.0, None)
