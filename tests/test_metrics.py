"""/metrics names every metric README documents, with values that move when the gateway works."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.gateway import DEMO_POLICY, RunningGateway
from tests.pgserver import PgServer

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def gateway(pg_server: PgServer, pg_database: str, tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway serving the demo database."""
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


def _documented() -> list[str]:
    """Metric names in README's Metrics table."""
    section = README.read_text().split("### Metrics", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(sqlgate_[a-z_]+)`", section, re.MULTILINE)


def _samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = found.get(name, 0.0) + float(value)
    return found


def test_every_documented_metric_is_scraped_and_moves(gateway: RunningGateway) -> None:
    """After a session with a refused statement, each documented family is present; counters counted it."""
    with psycopg.connect(**gateway.conninfo("alice", gateway.token("alice")), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM orders").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM orders")
        scraped = httpx.get(f"{gateway.http_url}/metrics", timeout=10)
    assert scraped.status_code == 200
    text = scraped.text
    documented = _documented()
    assert len(documented) >= 12
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    missing = [name for name in documented if name.removesuffix("_total") not in families and name not in families]
    assert not missing, missing
    samples = _samples(text)

    def total(name: str, **labels: str) -> float:
        wanted = [f'{key}="{value}"' for key, value in labels.items()]
        return sum(
            value
            for sample, value in samples.items()
            if sample.split("{", 1)[0] == name and all(label in sample for label in wanted)
        )

    assert total("sqlgate_decisions_total", outcome="allow") >= 1
    assert total("sqlgate_guardrail_refusals_total", enforced="true") >= 1
    assert total("sqlgate_lease_mint_seconds_count") >= 1
    assert total("sqlgate_token_verify_seconds_count") >= 1
    assert total("sqlgate_statement_seconds_count", outcome="success") >= 1
    assert total("sqlgate_statement_seconds_count", outcome="denied") >= 1
    assert total("sqlgate_session_statements_total", kind="pgwire") >= 1
    assert total("sqlgate_sessions", kind="pgwire") >= 1
    assert total("sqlgate_replica_info") >= 1
