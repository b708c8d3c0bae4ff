"""Guardrails on every path: audit mode records would_deny and refuses nothing; set_config($1) is checked at Bind."""

from __future__ import annotations

import json
import secrets

import httpx
import psycopg
import pytest

from tests.access.attack import audit_text
from tests.gateway import RunningGateway

POLICY = """\
rules:
  - name: rollout-audit
    who: {groups: [rollout]}
    databases: [demo]
    role: write
    max_ttl: 1h
    guardrails: {deny: [ddl], require_where: true, mode: audit}
  - name: strict-write
    who: {groups: [writers]}
    databases: [demo]
    role: write
    max_ttl: 1h
    guardrails: {deny: [ddl], require_where: true}
"""


@pytest.fixture
def gateway(pg_server, pg_database, tmp_path):
    running = RunningGateway(pg_server, tmp_path, POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


def _http(gateway, token, sql, params=()):
    return httpx.post(
        f"{gateway.http_url}/v1/query",
        json={"database": "demo", "sql": sql, "params": list(params)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def _statement_records(gateway):
    text = audit_text(gateway)
    records = []
    for page in text.splitlines():
        records += [r for r in json.loads(page)["records"] if r["type"] == "statement"]
    return records


def test_audit_mode_runs_what_it_would_refuse_and_records_would_deny(gateway):
    token = gateway.token("rosa", ("rollout",))
    with psycopg.connect(**gateway.conninfo("rosa", token), autocommit=True) as conn:
        conn.execute("UPDATE orders SET status = 'paid'")  # no WHERE: enforce would refuse it (simple protocol)
        conn.execute("UPDATE orders SET status = %s", ("refunded",))  # the same, extended protocol
        conn.cursor(binary=True).execute("DELETE FROM orders WHERE id = -1")
    response = _http(gateway, token, "UPDATE orders SET status = 'shipped'")
    assert response.status_code == 200, response.text
    statuses = gateway.pg_server.psql("SELECT DISTINCT status FROM orders", gateway.database).split()
    assert statuses == ["shipped"]
    records = _statement_records(gateway)
    would = [r for r in records if r["outcome"] == "would_deny"]
    assert sorted(r["data"]["protocol"] for r in would) == ["extended", "http", "simple"]
    assert all("without a WHERE" in r["reason"] for r in would)
    bounded = [r for r in records if "WHERE id = -1" in r["data"]["sql"]]
    assert bounded
    assert all(r["outcome"] == "success" for r in bounded)


def test_enforce_mode_still_refuses(gateway):
    token = gateway.token("wendy", ("writers",))
    with (
        psycopg.connect(**gateway.conninfo("wendy", token), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="WHERE"),
    ):
        conn.execute("UPDATE orders SET status = 'paid'")
    assert _http(gateway, token, "UPDATE orders SET status = 'paid'").status_code == 403


def test_audit_mode_still_refuses_identity_changes(gateway):
    token = gateway.token("rosa", ("rollout",))
    with psycopg.connect(**gateway.conninfo("rosa", token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE postgres")
        assert conn.execute("SELECT current_user").fetchone()[0].startswith(f"g{gateway.tag}_rosa")


@pytest.mark.parametrize("group", ["writers", "rollout"])
def test_set_config_with_a_bound_setting_name_is_checked_at_bind(gateway, group):
    token = gateway.token("pat", (group,))
    with psycopg.connect(**gateway.conninfo("pat", token), autocommit=True) as conn:
        value = conn.execute("SELECT set_config(%s, %s, false)", ("application_name", "reports")).fetchone()[0]
        assert value == "reports"
        for setting in ("role", " ROLE ", "session_authorization"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="role"):
                conn.execute("SELECT set_config(%s, %s, false)", (setting, "postgres"))
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on after the refused Bind
        assert conn.execute("SELECT current_user").fetchone()[0].startswith(f"g{gateway.tag}_pat")
    ok = _http(gateway, token, "SELECT set_config($1, $2, false)", ["application_name", "x"])
    assert ok.status_code == 200, ok.text
    refused = _http(gateway, token, "SELECT set_config($1, $2, false)", ["role", "postgres"])
    assert refused.status_code == 403, refused.text
