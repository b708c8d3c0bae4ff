"""Logins on HTTP and MCP are audited like the wire's: auth.failure each time, auth.success once per token."""

from __future__ import annotations

import json

import httpx

from tests.access.attack import audit_text, mcp_queries


def _auth_records(gateway):
    records = []
    for page in audit_text(gateway).splitlines():
        records += [r for r in json.loads(page)["records"] if r["type"].startswith("auth.")]
    return records


def _query(gateway, token):
    return httpx.post(
        f"{gateway.http_url}/v1/query",
        json={"database": "demo", "sql": "SELECT 1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_http_and_mcp_logins_write_auth_records(gateway):
    token = gateway.token("erin", ("engineers",))
    assert _query(gateway, token).status_code == 200
    assert _query(gateway, token).status_code == 200
    assert _query(gateway, token + "x").status_code == 401
    gateway.call(mcp_queries(gateway, token, ["SELECT 1"]))
    records = _auth_records(gateway)
    successes = [r for r in records if r["type"] == "auth.success" and "erin" in r["principal"]["subject"]]
    assert sorted(r["data"]["protocol"] for r in successes) == ["http", "mcp"]
    failures = [r for r in records if r["type"] == "auth.failure"]
    assert [r["data"]["protocol"] for r in failures] == ["http"]
    assert failures[0]["outcome"] == "failure"
    assert token[:20] not in json.dumps(records)  # never the token
