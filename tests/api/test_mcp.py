"""The MCP server at /mcp, driven by the MCP SDK's own streamable-HTTP client."""

from __future__ import annotations

import json

import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


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
    """The SDK client sees the four tools; query returns masked rows; describe lists visible columns."""
    token = gateway.token("alice", ("analysts",))
    calls = [
        ("query", {"database": "demo", "sql": "SELECT id, email FROM customers WHERE id = 1"}),
        ("list_databases", {}),
        ("describe", {"database": "demo"}),
        ("explain_access", {"database": "demo"}),
        ("query", {"database": "demo", "sql": "DELETE FROM orders WHERE id = 1"}),
    ]
    names, results = gateway.call(_session_calls(f"{gateway.http_url}/mcp", token, calls))
    assert names == ["describe", "explain_access", "list_databases", "query"]
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
