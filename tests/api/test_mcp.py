"""The MCP server at /mcp, driven by the MCP SDK's own streamable-HTTP client."""

from __future__ import annotations

import json
import secrets
import time

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.api.conftest import bearer
from tests.gateway import DEMO_POLICY, RunningGateway
from tests.notify.receiver import Receiver


async def _session_calls(url: str, token: str, calls: list[tuple[str, dict]]) -> tuple[list[str], list]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return sorted(tool.name for tool in tools.tools), results


def _payload(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)


def test_mcp_lists_tools_and_runs_a_masked_query(gateway):
    """The SDK client sees the tools; query returns masked rows; describe lists visible columns."""
    token = gateway.token("alice", ("analysts",))
    calls = [
        ("query", {"database": "demo", "sql": "SELECT id, email FROM customers WHERE id = 1"}),
        ("list_databases", {}),
        ("describe", {"database": "demo"}),
        ("explain_access", {"database": "demo"}),
        ("query", {"database": "demo", "sql": "DELETE FROM orders WHERE id = 1"}),
    ]
    names, results = gateway.call(_session_calls(f"{gateway.http_url}/mcp", token, calls))
    assert names == ["describe", "explain_access", "list_databases", "my_requests", "query", "request_access"]
    queried, listed, described, explained, refused = results
    assert _payload(queried)["rows"] == [[1, "c***@example.com"]]
    assert [db["name"] for db in _payload(listed)["databases"]] == ["demo"]
    customers = next(t for t in _payload(described)["tables"] if t["name"] == "public.customers")
    assert {c["name"]: c["masked"] for c in customers["columns"]}["email"] is True
    assert _payload(explained)["decision"]["outcome"] == "allow"
    assert refused.is_error
    assert "403" in refused.content[0].text
    assert "analysts-read" in refused.content[0].text


def test_mcp_without_a_token_is_401(gateway):
    """No token, or a bad one, is refused before the MCP server sees the request."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    missing = httpx.post(f"{gateway.http_url}/mcp", json=message, headers=headers)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    bad = httpx.post(f"{gateway.http_url}/mcp", json=message, headers={**headers, "Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1."""
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def gateway_with_webhook(pg_server, pg_database, tmp_path, receiver, monkeypatch):
    """The demo gateway with notify.webhooks pointing at ``receiver`` (set through the environment)."""
    monkeypatch.setenv("SQLGATE_NOTIFY__WEBHOOKS", json.dumps([{"url": receiver.url(), "backoff": 0.05}]))
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


def _events(receiver: Receiver, count: int) -> list[tuple[str, str]]:
    """The first ``count`` webhook events received (waits for background delivery, at most 30 s)."""
    deadline = time.monotonic() + 30
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(post.json()["event"], post.json()["request"]["id"]) for post in receiver.received]


def test_an_agent_asks_a_person_approves_and_the_next_query_runs(gateway_with_webhook, receiver):
    """Denied write -> request_access with a reason -> the dba's inbox and the webhook -> approve -> query runs."""
    gateway = gateway_with_webhook
    agent = gateway.token("robot", ("oncall",))
    update = {"database": "demo", "sql": "UPDATE orders SET status = 'paid' WHERE id = 3", "role": "write"}
    calls = [
        ("query", update),
        ("request_access", {"database": "demo", "role": "write", "reason": "agent: fix order 3", "duration": "3h"}),
        ("request_access", {"database": "demo", "role": "write", "reason": "agent: fix order 3", "duration": "30m"}),
        ("my_requests", {}),
    ]
    _, (refused, too_long, filed, mine) = gateway.call(_session_calls(f"{gateway.http_url}/mcp", agent, calls))
    assert refused.is_error
    assert "needs approval" in refused.content[0].text
    assert too_long.is_error
    assert "400" in too_long.content[0].text
    assert "rule oncall-write-with-approval grants role write for at most 2h" in too_long.content[0].text
    request = _payload(filed)
    assert (request["status"], request["duration"], request["reason"]) == ("pending", "30m", "agent: fix order 3")
    assert [r["id"] for r in _payload(mine)["requests"]] == [request["id"]]

    with httpx.Client(base_url=gateway.http_url, timeout=60) as client:
        dba = bearer(gateway.token("dora", ("dba",)))
        inbox = client.get("/v1/requests", headers=dba).json()["requests"]
        assert [(r["id"], r["requester"]["name"], r["preview"]["may_approve"]) for r in inbox] == [
            (request["id"], "robot", True)
        ]
        approved = client.post(f"/v1/requests/{request['id']}/approve", headers=dba)
        assert approved.status_code == 200, approved.text

    calls = [("query", update), ("my_requests", {"status": "approved"})]
    _, (ran, approved_list) = gateway.call(_session_calls(f"{gateway.http_url}/mcp", agent, calls))
    assert _payload(ran)["row_count"] == 1
    assert [r["status"] for r in _payload(approved_list)["requests"]] == ["approved"]
    expected = [("request.filed", request["id"]), ("request.approved", request["id"])]
    assert sorted(_events(receiver, 2)) == sorted(expected)
    filed_post = next(post for post in receiver.received if post.json()["event"] == "request.filed")
    assert "agent: fix order 3" in filed_post.json()["text"]
    metrics = httpx.get(f"{gateway.http_url}/metrics").text
    assert 'sqlgate_webhook_deliveries_total{event="approved",outcome="delivered"}' in metrics
