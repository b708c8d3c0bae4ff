"""POST /v1/query end to end: a real token, policy, guardrails, lease, pool, timeout and masking."""

from __future__ import annotations

from tests.api.conftest import bearer


def query(client, token, sql, **extra):
    """POST /v1/query on ``demo``."""
    return client.post("/v1/query", headers=bearer(token), json={"database": "demo", "sql": sql, **extra})


def test_query_returns_columns_and_rows(gateway, client):
    """A permitted SELECT returns typed columns, rows and counts."""
    token = gateway.token("erin", ("engineers",))
    response = query(client, token, "SELECT id, name FROM customers ORDER BY id LIMIT 2")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == [{"name": "id", "type": "int4"}, {"name": "name", "type": "text"}]
    assert body["rows"] == [[1, "Grace 1"], [2, "Alan 2"]]
    assert body["row_count"] == 2
    assert body["truncated"] is False
    assert body["duration_ms"] >= 0


def test_params_types_and_truncation(gateway, client):
    """Parameters bind; numeric and timestamps come back as text; max_rows truncates."""
    token = gateway.token("erin", ("engineers",))
    response = query(
        client, token, "SELECT id, total, created_at FROM orders WHERE id <= $1 ORDER BY id", params=[5], max_rows=3
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["truncated"] is True
    assert body["row_count"] == 3
    assert body["rows"][0] == [1, "0.37", "2026-01-01T03:00:00+00:00"]


def test_masking_of_email_and_ssn(gateway, client):
    """The analysts' grant masks customers.email and every ssn column."""
    token = gateway.token("alice", ("analysts",))
    response = query(client, token, "SELECT id, email, ssn, region FROM customers WHERE id = 1")
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[1, "c***@example.com", "****", "us"]]


def test_masking_follows_the_column_not_its_alias(gateway, client):
    """An alias does not unmask a column; another column merely named like a masked one is left alone."""
    token = gateway.token("alice", ("analysts",))
    aliased = query(client, token, "SELECT email AS contact, s.ssn AS x FROM customers s WHERE id = 1")
    assert aliased.json()["rows"] == [["c***@example.com", "****"]]
    renamed = query(client, token, "SELECT name AS email FROM customers WHERE id = 1")
    assert renamed.json()["rows"] == [["Grace 1"]]


def test_computed_columns_fail_closed(gateway, client):
    """An expression over a masked column is replaced whole; a constant merely named like a masked column is not."""
    token = gateway.token("alice", ("analysts",))
    computed = query(client, token, "SELECT upper(email) AS shout, 'x@y.z' AS email FROM customers WHERE id = 1")
    assert computed.json()["rows"] == [["****", "x@y.z"]]
    plain = query(client, token, "SELECT count(*) AS n FROM customers")
    assert plain.json()["rows"] == [[200]]


def test_writes_with_a_write_grant_report_affected_rows(gateway, client):
    """A writer's UPDATE runs and row_count is the number of rows changed."""
    token = gateway.token("wendy", ("writers",))
    response = query(client, token, "UPDATE orders SET status = 'paid' WHERE id IN (1, 2)")
    assert response.status_code == 200, response.text
    assert response.json()["row_count"] == 2
    assert response.json()["columns"] == []


def test_sql_error_is_400_with_sqlstate(gateway, client):
    """A statement the database refuses is a 400 problem with the database's SQLSTATE."""
    token = gateway.token("erin", ("engineers",))
    response = query(client, token, "SELECT nope FROM customers")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["sqlstate"] == "42703"
    assert "nope" in problem["detail"]


def test_timeout_is_504(gateway, client):
    """The server-side statement timeout cancels a slow statement: 504 with SQLSTATE 57014."""
    token = gateway.token("erin", ("engineers",))
    response = query(client, token, "SELECT pg_sleep(5)", timeout_ms=200)
    assert response.status_code == 504
    assert response.json()["sqlstate"] == "57014"
    after = query(client, token, "SELECT current_setting('statement_timeout') AS t")
    assert after.json()["rows"] == [["30s"]]


def test_bad_token_is_401_with_reason(gateway, client):
    """No token, or a bad one, is a 401 problem saying why."""
    missing = client.post("/v1/query", json={"database": "demo", "sql": "SELECT 1"})
    assert missing.status_code == 401
    assert "Bearer" in missing.json()["detail"]
    bad = query(client, "not-a-jwt", "SELECT 1")
    assert bad.status_code == 401
    assert bad.json()["sqlstate"] in {"28000", "28P01"}
    assert bad.json()["detail"]


def test_no_rule_denial(gateway, client):
    """A caller no rule covers gets 403 saying no rule grants it."""
    response = query(client, gateway.token("mallory", ("interns",)), "SELECT 1")
    assert response.status_code == 403
    assert "no rule grants" in response.json()["detail"]
    assert response.json()["sqlstate"] == "42501"


def test_guardrail_denial_names_the_rule(gateway, client):
    """A write under a read-only grant is refused by the guardrail, naming the rule."""
    response = query(client, gateway.token("alice", ("analysts",)), "DELETE FROM orders WHERE id = 1")
    assert response.status_code == 403
    problem = response.json()
    assert problem["rule"] == "analysts-read"
    assert "guardrail" in problem["detail"]


def test_needs_approval_denial(gateway, client):
    """A role that needs approval is refused with the approval rule and how to ask."""
    response = query(client, gateway.token("olga", ("oncall",)), "SELECT 1")
    assert response.status_code == 403
    problem = response.json()
    assert problem["rule"] == "oncall-write-with-approval"
    assert "approval" in problem["detail"]
    assert "sqlgate request demo" in problem["detail"]


def test_unknown_database_and_bad_body(gateway, client):
    """An unknown database and an invalid body are clear problems, not 500s."""
    token = gateway.token("erin", ("engineers",))
    unknown = client.post("/v1/query", headers=bearer(token), json={"database": "nope", "sql": "SELECT 1"})
    assert 400 <= unknown.status_code < 500
    invalid = client.post("/v1/query", headers=bearer(token), json={"database": "demo"})
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["loc"][-1] == "sql"


def test_statements_are_audited(gateway, client):
    """Each API statement lands in the audit log with its SQL, rows and outcome."""
    token = gateway.token("erin", ("engineers",))
    query(client, token, "SELECT id FROM customers WHERE id = $1", params=[7])
    gateway.call(gateway.gateway.services.audit.flush())
    auditor = gateway.token("audrey", ("auditors",))
    page = client.get("/v1/audit", headers=bearer(auditor), params={"type": "statement", "db": "demo"}).json()
    record = page["records"][0]
    assert record["data"]["sql"] == "SELECT id FROM customers WHERE id = $1"
    assert record["data"]["params"] == ["7"]
    assert record["data"]["rows"] == 1
    assert record["data"]["protocol"] == "http"


def test_oversized_body_is_413(gateway, client):
    """A body over api.max_body_bytes is refused as problem JSON before it is read."""
    token = gateway.token("erin", ("engineers",))
    sql = "SELECT 1 -- " + "x" * 1_100_000
    response = client.post("/v1/query", headers=bearer(token), json={"database": "demo", "sql": sql})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_a_result_type_the_driver_cannot_decode_is_a_clear_400(gateway, client):
    """pg_stats has anyarray columns: the caller is told to cast them, not given a 500."""
    token = gateway.token("erin", ("engineers",))
    response = query(client, token, "SELECT * FROM pg_stats LIMIT 1")
    assert response.status_code == 400, response.text
    assert response.json()["sqlstate"] == "0A000"
    assert "::text" in response.text
