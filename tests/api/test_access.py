"""whoami, databases, credentials, access requests and the approval flow, sessions and their end."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time

import asyncpg
import httpx
import pytest

from tests.api.conftest import bearer
from tests.gateway import DEMO_POLICY, RunningGateway


def test_whoami(gateway, client):
    """Whoami shows the verified identity from the token."""
    body = client.get("/v1/whoami", headers=bearer(gateway.token("alice", ("analysts",)))).json()
    assert body["subject"] == "alice"
    assert body["groups"] == ["analysts"]
    assert body["method"]
    assert body["expires_at"]


def test_databases_lists_reachable_with_how_to_connect(gateway, client):
    """Databases shows the role, ttl and a psql line; a caller without rules sees none."""
    body = client.get("/v1/databases", headers=bearer(gateway.token("alice", ("analysts",)))).json()
    [demo] = body["databases"]
    assert demo["name"] == "demo"
    assert demo["access"] == "allow"
    assert demo["role"] == "read"
    assert demo["rules"] == ["analysts-read"]
    assert demo["connect"]["port"] == gateway.pg_port
    assert "dbname=demo" in demo["connect"]["psql"]
    oncall = client.get("/v1/databases", headers=bearer(gateway.token("olga", ("oncall",)))).json()
    assert oncall["databases"][0]["access"] == "needs_approval"
    nobody = client.get("/v1/databases", headers=bearer(gateway.token("mallory", ("interns",)))).json()
    assert nobody == {"databases": []}


def test_credentials_log_in_directly_and_ttl_is_capped(gateway, client):
    """POST /v1/credentials gives a login that works against the database itself, capped by policy."""
    response = client.post(
        "/v1/credentials",
        headers=bearer(gateway.token("erin", ("engineers",))),
        json={"database": "demo", "ttl": "10m"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    creds = response.json()
    assert set(creds) == {"host", "port", "dbname", "user", "password", "expires_at", "dsn"}

    async def check() -> int:
        conn = await asyncpg.connect(creds["dsn"])
        try:
            return int(await conn.fetchval("SELECT count(*) FROM customers"))
        finally:
            await conn.close()

    assert gateway.call(check()) == 200
    denied = client.post(
        "/v1/credentials", headers=bearer(gateway.token("mallory", ("interns",))), json={"database": "demo"}
    )
    assert denied.status_code == 403
    bad = client.post(
        "/v1/credentials",
        headers=bearer(gateway.token("erin", ("engineers",))),
        json={"database": "demo", "ttl": "soon"},
    )
    assert bad.status_code == 400


def test_approval_flow_until_the_grant_expires(gateway, client):
    """Request -> approve by a dba -> the query works -> the grant expires -> 403."""
    olga = bearer(gateway.token("olga", ("oncall",)))
    dba = bearer(gateway.token("dora", ("dba",)))
    sql = {"database": "demo", "sql": "UPDATE orders SET status = 'paid' WHERE id = 3", "role": "write"}
    assert client.post("/v1/query", headers=olga, json=sql).status_code == 403
    created = client.post(
        "/v1/requests",
        headers=olga,
        json={"database": "demo", "role": "write", "duration": "4s", "reason": "incident 42"},
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert created.json()["status"] == "pending"
    assert client.post(f"/v1/requests/{request_id}/approve", headers=olga).status_code == 403
    assert [r["id"] for r in client.get("/v1/requests", headers=dba).json()["requests"]] == [request_id]
    approved = client.post(f"/v1/requests/{request_id}/approve", headers=dba)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    worked = client.post("/v1/query", headers=olga, json=sql)
    assert worked.status_code == 200, worked.text
    assert worked.json()["row_count"] == 1
    expires = approved.json()["expires_at"]
    time.sleep(4.5)
    after = client.post("/v1/query", headers=olga, json=sql)
    assert after.status_code == 403, (expires, after.text)
    assert after.json()["rule"] == "oncall-write-with-approval"


def test_deny_a_request(gateway, client):
    """A dba denies a request with a reason; the requester sees it."""
    olga = bearer(gateway.token("olga", ("oncall",)))
    created = client.post(
        "/v1/requests", headers=olga, json={"database": "demo", "role": "write", "reason": "curious"}
    ).json()
    denied = client.post(
        f"/v1/requests/{created['id']}/deny",
        headers=bearer(gateway.token("dora", ("dba",))),
        json={"reason": "not during the freeze"},
    )
    assert denied.status_code == 200, denied.text
    mine = client.get("/v1/requests", headers=olga).json()["requests"]
    assert mine[0]["status"] == "denied"
    assert mine[0]["decision_reason"] == "not during the freeze"
    stranger = client.get("/v1/requests", headers=bearer(gateway.token("erin", ("engineers",)))).json()
    assert stranger == {"requests": []}
    missing = client.post("/v1/requests/nope/approve", headers=bearer(gateway.token("dora", ("dba",))))
    assert missing.status_code == 404


def test_admin_ends_a_running_query(gateway, client):
    """DELETE /v1/sessions/{id} cancels a running API query; the caller learns why."""
    token = gateway.token("erin", ("engineers",))
    admin = bearer(gateway.token("root", ("sqlgate-admins",)))
    results: list = []
    runner = threading.Thread(
        target=lambda: results.append(
            client.post("/v1/query", headers=bearer(token), json={"database": "demo", "sql": "SELECT pg_sleep(30)"})
        )
    )
    runner.start()
    sessions: list = []
    deadline = time.monotonic() + 20
    while not sessions and time.monotonic() < deadline:
        sessions = [s for s in client.get("/v1/sessions", headers=admin).json()["sessions"] if s["kind"] == "http"]
        time.sleep(0.05)
    assert sessions, "the running query never showed up as a session"
    assert sessions[0]["principal"]["subject"] == "erin"
    ended = client.delete(f"/v1/sessions/{sessions[0]['id']}", headers=admin, params={"reason": "too slow"})
    assert ended.status_code == 200
    runner.join(20)
    [response] = results
    assert response.status_code == 403
    assert "too slow" in response.json()["detail"]
    assert client.delete(f"/v1/sessions/{sessions[0]['id']}", headers=admin).status_code == 404


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/audit"])
def test_admin_and_auditor_routes_refuse_others(gateway, client, path):
    """Sessions need an admin group, the audit log an auditor group."""
    response = client.get(path, headers=bearer(gateway.token("erin", ("engineers",))))
    assert response.status_code == 403
    assert "needs membership" in response.json()["detail"]


def test_metrics_count_requests_queries_and_sessions(gateway, client):
    """/metrics exports API request counts, the query latency histogram and the running-queries gauge."""
    client.post(
        "/v1/query", headers=bearer(gateway.token("erin", ("engineers",))), json={"database": "demo", "sql": "SELECT 1"}
    )
    text = client.get("/metrics").text
    assert 'sqlgate_api_requests_total{route="/v1/query",status="200"}' in text
    assert "sqlgate_api_query_seconds_bucket" in text
    assert "sqlgate_api_running_queries" in text


def _logins(gateway) -> list[str]:
    """The database logins the gateway has minted so far."""
    prefix = f"g{gateway.tag}_"
    return gateway.pg_server.psql(f"SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{prefix}')").split()


def test_credentials_refuse_a_grant_with_masks_or_guardrails(gateway, client):
    """No back door: a plain login would bypass the analysts' masks, so none is minted; the 403 names the rule."""
    for groups in [("analysts",), ("engineers", "analysts")]:  # every contributing rule must allow direct login
        response = client.post(
            "/v1/credentials", headers=bearer(gateway.token("alice", groups)), json={"database": "demo"}
        )
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "https://sqlgate.dev/problems/direct-login-refused"
        assert problem["rule"] == "analysts-read"
        assert problem["sqlstate"] == "42501"
        assert "rule analysts-read does not allow direct_login" in problem["detail"]
        assert "POST /v1/query" in problem["detail"]
        assert "direct_login: true on rule analysts-read" in problem["detail"]
        assert "password" not in problem
    assert _logins(gateway) == []
    gateway.call(gateway.gateway.services.audit.flush())  # the refusal was handed to the log, not awaited
    auditor = bearer(gateway.token("audrey", ("auditors",)))
    records = client.get("/v1/audit", headers=auditor, params={"type": "policy.decision", "who": "alice"}).json()
    refusals = [r for r in records["records"] if r["outcome"] == "denied" and r["data"]["purpose"] == "credentials"]
    assert refusals, records
    assert "does not allow direct_login" in refusals[0]["reason"]


def test_credentials_for_a_rule_saying_direct_login(pg_server, pg_database, tmp_path):
    """`direct_login: true` lets the same masked grant be taken as a plain login; other rules stay refused."""
    policy = DEMO_POLICY.replace(
        '    mask: {"customers.email": email, "*.ssn": redact}\n',
        '    mask: {"customers.email": email, "*.ssn": redact}\n    direct_login: true\n',
    )
    policy += "  - {name: never-direct, who: {groups: [bots]}, databases: [demo], role: read, direct_login: false}\n"
    running = RunningGateway(pg_server, tmp_path, policy, pg_database, secrets.token_hex(3))
    try:
        with httpx.Client(base_url=running.http_url, timeout=60) as http:
            analyst = bearer(running.token("alice", ("analysts",)))
            issued = http.post("/v1/credentials", headers=analyst, json={"database": "demo"})
            assert issued.status_code == 200, issued.text
            assert issued.json()["user"].startswith(f"g{running.tag}_")
            bot = http.post("/v1/credentials", headers=bearer(running.token("b", ("bots",))), json={"database": "demo"})
            assert bot.status_code == 403
            assert bot.json()["rule"] == "never-direct"
    finally:
        running.stop()


def test_sqlgate_creds_prints_the_refusal_and_exits_non_zero(gateway):
    """`sqlgate creds demo` for an analyst: exit 1, the reason, the rule and what to do on stderr; nothing on stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "sqlgate", "creds", "demo", "--gateway", gateway.http_url, "--json"],
        env={**os.environ, "SQLGATE_TOKEN": gateway.token("alice", ("analysts",))},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=gateway.workdir,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    error = " ".join(result.stderr.split())
    assert error.startswith("error: 403 role read on demo is not issued as a plain database login")
    assert "POST /v1/query" in error
    assert "[rule analysts-read]" in error
