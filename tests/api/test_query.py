"""POST /v1/query end to end: a real token, policy, guardrails, lease, pool and masking."""

from __future__ import annotations

from tests.api.conftest import bearer


def test_query_returns_columns_and_rows(gateway, client):
    """A permitted SELECT returns typed columns, rows and counts."""
    token = gateway.token("erin", ("engineers",))
    response = client.post(
        "/v1/query",
        headers=bearer(token),
        json={"database": "demo", "sql": "SELECT id, name FROM customers ORDER BY id LIMIT 2"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == [{"name": "id", "type": "int4"}, {"name": "name", "type": "text"}]
    assert len(body["rows"]) == 2
    assert body["row_count"] == 2
    assert body["truncated"] is False
