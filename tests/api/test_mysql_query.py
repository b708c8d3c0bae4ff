"""The HTTP query API and MCP on a MariaDB database (issue 18): the MySQL listener's guarantees on every path.

Against the machine's MariaDB (127.0.0.1:3306, root without password), with the
database, views and grants of the listener's view-masking tests: typed JSON, the
listener's masks by column origin (base columns, computed columns, views), its
guardrail corpus and its masking attack corpus over HTTP and over MCP, an audit
record per statement, MySQL errors with their number and SQLSTATE, row limits,
timeouts, and pooled connections that carry nothing from one request to the next.
Skips, naming MariaDB, when no server answers.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from sqlgate.api import mysqlpool
from tests.api.conftest import bearer
from tests.api.test_mcp import _session_calls
from tests.mysqlproxy.conftest import MysqlGateway, records, root_sql
from tests.mysqlproxy.corpus import HARMLESS, REFUSED
from tests.mysqlproxy.test_view_masking import CORPUS, leaked, views_gateway  # noqa: F401 - the fixture

NDJSON = "application/x-ndjson"


@pytest.fixture(scope="module")
def gw(views_gateway: MysqlGateway) -> MysqlGateway:  # noqa: F811 - the imported fixture
    """The view-masking tests' gateway: MariaDB database ``shop`` with customers, orders, big and views."""
    return views_gateway


@pytest.fixture(scope="module")
def http(gw: MysqlGateway) -> httpx.Client:
    with httpx.Client(base_url=gw.http_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def analyst(gw: MysqlGateway) -> str:
    """A token of the ``analysts-read`` grant: read only, email and ssn masked."""
    return gw.token("alice", ("analysts",))


@pytest.fixture(scope="module")
def engineer(gw: MysqlGateway) -> str:
    """A token of the ``engineers-read`` grant: read, nothing masked, no guardrails."""
    return gw.token("erin", ("engineers",))


def query(http: httpx.Client, token: str, sql: str, **extra: Any) -> httpx.Response:
    return http.post("/v1/query", headers=bearer(token), json={"database": "shop", "sql": sql, **extra})


def rows(http: httpx.Client, token: str, sql: str, **extra: Any) -> list[list[Any]]:
    response = query(http, token, sql, **extra)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


# -- running and typing ---------------------------------------------------------------------------


def test_a_statement_returns_typed_json(http, engineer):
    """Integers and floats are numbers; DECIMAL, dates, times and binary strings are text, as on PostgreSQL."""
    sql = (
        "SELECT id, name, CAST(1.5 AS DECIMAL(5,2)) AS d, DATE('2024-01-02') AS day,"
        " TIMESTAMP('2024-01-02 03:04:05') AS ts, TIMEDIFF('10:00:00', '12:30:01') AS t, 2.5e0 AS f,"
        " NULL AS z, x'00ff' AS b FROM customers WHERE id = 1"
    )
    response = query(http, engineer, sql)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = [1, "Alice", "1.50", "2024-01-02", "2024-01-02T03:04:05", "-02:30:01", 2.5, None, "\\x00ff"]
    assert body["rows"] == [expected]
    types = {column["name"]: column["type"] for column in body["columns"]}
    assert types == {
        "id": "int",
        "name": "varchar",
        "d": "decimal",
        "day": "date",
        "ts": "datetime",
        "t": "time",
        "f": "double",
        "z": "null",
        "b": "varbinary",
    }
    assert body["row_count"] == 1
    assert body["truncated"] is False


def test_params_bind_to_placeholders(http, engineer):
    assert rows(http, engineer, "SELECT name FROM customers WHERE id = ?", params=[2]) == [["Bob"]]
    response = query(http, engineer, "SELECT name FROM customers WHERE id = ?", params=[1, 2])
    assert response.status_code == 400, response.text
    assert "placeholders" in response.json()["detail"]


def test_row_limit_truncates_and_the_pool_goes_on(http, engineer):
    """max_rows cuts the result (its connection is closed, not drained); the next request runs."""
    response = query(http, engineer, "SELECT id FROM big ORDER BY id", max_rows=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rows"] == [[1], [2], [3], [4], [5]]
    assert body["truncated"] is True
    assert rows(http, engineer, "SELECT COUNT(*) FROM big") == [[100_000]]


def test_a_statement_past_its_timeout_is_504(http, engineer):
    response = query(http, engineer, "SELECT COUNT(*) FROM big a, big b", timeout_ms=200)
    assert response.status_code == 504, response.text
    assert response.json()["sqlstate"] == "57014"
    assert rows(http, engineer, "SELECT 1") == [[1]]


def test_a_statement_the_servers_timeout_misses_is_killed(http, engineer, gw, monkeypatch):
    """MySQL times out SELECT only: with no server timeout, the gateway's backstop kills the statement."""
    monkeypatch.setattr(mysqlpool, "timeout_setting", lambda _connection, _ms: "max_statement_time = 0")
    http.post(
        "/v1/query", headers=bearer(gw.token("sam", ("engineers",))), json={"database": "shop", "sql": "SELECT 1"}
    )
    sql = "SELECT COUNT(*) FROM big a, big b WHERE a.id + b.id < 0 /* backstop-marker */"  # the server never looks up
    response = query(http, gw.token("sam", ("engineers",)), sql, timeout_ms=100)
    assert response.status_code == 504, response.text
    assert_ends_on_server("backstop-marker")


def assert_ends_on_server(marker: str) -> None:
    """The statement with ``marker`` in its text is no longer running on the server (soon)."""
    running = (
        f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()"
    )
    try:
        for _ in range(100):
            if root_sql(running) == [(0,)]:
                break
            time.sleep(0.05)
        assert root_sql(running) == [(0,)]
    finally:  # whatever happened, nothing of this test keeps running on the shared server
        for (thread,) in root_sql(running.replace("COUNT(*)", "ID")):
            root_sql(f"KILL QUERY {int(thread)}")


def test_a_server_error_has_its_number_and_sqlstate(http, engineer):
    response = query(http, engineer, "SELECT * FROM no_such_table")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["sqlstate"] == "42S02"
    assert body["error_code"] == 1146
    assert "no_such_table" in body["detail"]


def test_session_state_does_not_reach_the_next_request(http, engineer):
    """Each connection is reset when it goes back to the pool: user variables, transactions, settings."""
    for _ in range(3):
        assert rows(http, engineer, "SET @carried = 5") == []
        assert rows(http, engineer, "START TRANSACTION") == []
        assert rows(http, engineer, "SET SESSION sql_mode = 'ANSI_QUOTES'") == []
        assert rows(http, engineer, "SELECT @carried, @@in_transaction, @@sql_mode LIKE '%ANSI_QUOTES%'") == [
            [None, 0, 0]
        ]


def test_ndjson_streams_masked_rows(http, analyst):
    response = http.post(
        "/v1/query",
        headers={**bearer(analyst), "Accept": NDJSON},
        json={"database": "shop", "sql": "SELECT id, email, name FROM customers ORDER BY id"},
    )
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [c["name"] for c in lines[0]["columns"]] == ["id", "email", "name"]
    assert lines[1:4] == [
        [1, "a***@example.com", "Alice"],
        [2, "b***@example.org", "Bob"],
        [3, "k***@vault.test", "Carol"],
    ]
    assert lines[4]["row_count"] == 3


# -- masking ---------------------------------------------------------------------------------------


def test_base_columns_are_masked_by_origin(http, analyst):
    assert rows(http, analyst, "SELECT id, email, ssn, name FROM customers WHERE id = 1") == [
        [1, "a***@example.com", "****", "Alice"]
    ]
    assert rows(http, analyst, "SELECT c.email AS name FROM customers c WHERE id = ?", params=[2]) == [
        ["b***@example.org"]
    ]


def test_computed_columns_are_replaced_whole(http, analyst):
    """UPPER(email): ****; LENGTH(email): NULL; UPPER(name): shown."""
    assert rows(http, analyst, "SELECT UPPER(email), LENGTH(email), UPPER(name) FROM customers WHERE id = 1") == [
        ["****", None, "ALICE"]
    ]


def test_views_are_traced_to_their_base_columns(http, analyst):
    assert rows(http, analyst, "SELECT id, contact, name FROM v_renamed ORDER BY id") == [
        [1, "a***@example.com", "Alice"],
        [2, "b***@example.org", "Bob"],
        [3, "k***@vault.test", "Carol"],
    ]
    assert rows(http, analyst, "SELECT id, mail, who FROM v_over WHERE id = 1") == [[1, "a***@example.com", "ALICE"]]
    assert rows(http, analyst, "SELECT tagged, n, uname FROM v_computed WHERE id = 1") == [["****", None, "ALICE"]]
    assert rows(http, analyst, "SELECT * FROM v_clean WHERE id = 1") == [[1, "Alice"]]


def test_an_unmasked_grant_reads_in_clear(http, engineer):
    assert rows(http, engineer, "SELECT contact, UPPER(contact) FROM v_renamed WHERE id = 1") == [
        ["alice@example.com", "ALICE@EXAMPLE.COM"]
    ]


def test_copying_a_masked_value_is_refused(http, gw):
    token = gw.token("bob", ("builders",))
    response = query(http, token, "INSERT INTO orders (customer_id, note) SELECT id, contact FROM v_renamed")
    assert response.status_code == 403, response.text
    assert "email" in response.json()["detail"]


@pytest.mark.parametrize("sql", CORPUS)
def test_attack_corpus_over_http_gets_no_masked_value_out(http, analyst, sql):
    """Each of the listener's view and masking attacks is refused, fails, or returns no piece of a secret."""
    response = query(http, analyst, sql)
    if response.status_code == 200:
        result = response.json()["rows"]
        assert result, sql
        assert leaked(result) == [], result
    else:
        assert response.status_code in {400, 403}, response.text
        assert leaked([(response.json()["detail"],)]) == [], response.text


def test_attack_corpus_over_mcp_gets_no_masked_value_out(gw, analyst):
    calls = [("query", {"database": "shop", "sql": sql}) for sql in CORPUS]
    _names, results = gw.call(_session_calls(f"{gw.http_url}/mcp", analyst, calls))
    answered = 0
    for sql, result in zip(CORPUS, results, strict=True):
        text = " ".join(getattr(part, "text", "") for part in result.content)
        if result.is_error:
            assert leaked([(text,)]) == [], (sql, text)
            assert ": 400: " in text or ": 403: " in text, (sql, text)
        else:
            found = (result.structured_content or json.loads(text))["rows"]
            assert leaked(found) == [], (sql, found)
            answered += 1
    assert answered >= len(CORPUS) // 2  # most attacks run, masked, rather than fail


# -- guardrails ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", REFUSED)
def test_refused_over_http(http, analyst, sql):
    """Each statement the listener refuses is refused here too: 403, SQLSTATE 42501, the rule named."""
    response = query(http, analyst, sql)
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["sqlstate"] == "42501"
    assert body["rule"] == "analysts-read"
    assert "refused" in body["detail"]


@pytest.mark.parametrize("sql", HARMLESS)
def test_harmless_over_http(http, analyst, sql):
    response = query(http, analyst, sql)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("sql", ["KILL 1", "KILL QUERY 1", "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE orders"])
def test_kill_and_local_infile_are_refused_even_where_the_grant_allows_everything(http, engineer, sql):
    response = query(http, engineer, sql)
    assert response.status_code == 403, response.text
    assert response.json()["rule"] == "engineers-read"


def test_the_corpora_over_mcp(gw, analyst):
    """The same corpus through the MCP query tool: refusals are 403 naming the rule, harmless statements run."""
    calls = [("query", {"database": "shop", "sql": sql}) for sql in [*REFUSED, *HARMLESS]]
    _names, results = gw.call(_session_calls(f"{gw.http_url}/mcp", analyst, calls))
    for sql, result in zip(REFUSED, results[: len(REFUSED)], strict=True):
        assert result.is_error, sql
        text = result.content[0].text
        assert ": 403: " in text, (sql, text)
        assert "analysts-read" in text, (sql, text)
    for sql, result in zip(HARMLESS, results[len(REFUSED) :], strict=True):
        assert not result.is_error, (sql, result.content)


def test_mcp_describe_marks_masked_columns(gw, analyst):
    _names, (described,) = gw.call(_session_calls(f"{gw.http_url}/mcp", analyst, [("describe", {"database": "shop"})]))
    assert not described.is_error, described.content
    payload = described.structured_content or json.loads(described.content[0].text)
    customers = next(t for t in payload["tables"] if t["name"] == f"{gw.database}.customers")
    masked = {column["name"]: column["masked"] for column in customers["columns"]}
    assert masked == {"id": False, "name": False, "email": True, "ssn": True}


# -- audit and identity ----------------------------------------------------------------------------


def test_one_audit_record_per_statement(http, gw):
    token = gw.token("rita", ("analysts",))
    assert rows(http, token, "SELECT id FROM orders WHERE id <= 2 /* api-audited-run */") == [[1], [2]]
    assert query(http, token, "DELETE FROM orders WHERE id = 1 /* api-audited-refusal */").status_code == 403
    assert query(http, token, "SELECT * FROM nowhere /* api-audited-error */").status_code == 400
    (run,) = records(gw, "statement", grep="api-audited-run")
    assert run["outcome"] == "success"
    assert run["data"]["protocol"] == "http"
    assert run["data"]["rows"] == 2
    assert "rita" in json.dumps(run["principal"])
    (refused,) = records(gw, "statement", grep="api-audited-refusal")
    assert refused["outcome"] == "denied"
    assert "refused" in refused["reason"]
    (failed,) = records(gw, "statement", grep="api-audited-error")
    assert failed["data"]["sqlstate"] == "42S02"


def test_mcp_statements_are_audited_too(gw):
    token = gw.token("rita", ("analysts",))
    calls = [("query", {"database": "shop", "sql": "SELECT id FROM orders WHERE id = 1 /* mcp-audited-run */"})]
    gw.call(_session_calls(f"{gw.http_url}/mcp", token, calls))
    (run,) = records(gw, "statement", grep="mcp-audited-run")
    assert run["outcome"] == "success"
    assert run["data"]["protocol"] == "mcp"
    assert run["data"]["rows"] == 1


def test_a_wrong_token_is_refused(http, gw):
    response = query(http, "not-a-token", "SELECT 1")
    assert response.status_code == 401
    forged = gw.token("alice", ("analysts",))[:-4] + "AAAA"
    assert query(http, forged, "SELECT 1").status_code == 401


# -- lifetime (last: revoking ends every lease of the database) -----------------------------------


def test_admin_ends_a_running_query(http, gw):
    """DELETE /v1/sessions/{id} ends a running MySQL query over HTTP; the caller learns why."""
    token = gw.token("erin", ("engineers",))
    admin = bearer(gw.token("root", ("sqlgate-admins",)))
    results: list[httpx.Response] = []
    sql = "SELECT COUNT(*) FROM big a, big b WHERE a.id + b.id < 0 /* admin-end-marker */"  # never looks up
    runner = threading.Thread(target=lambda: results.append(query(http, token, sql)))
    runner.start()
    sessions: list[dict[str, Any]] = []
    for _ in range(400):
        sessions = [s for s in http.get("/v1/sessions", headers=admin).json()["sessions"] if s["kind"] == "http"]
        if sessions:
            break
        time.sleep(0.05)
    assert sessions, "the running query never showed up as a session"
    ended = http.delete(f"/v1/sessions/{sessions[0]['id']}", headers=admin, params={"reason": "too slow"})
    assert ended.status_code == 200
    runner.join(20)
    [response] = results
    assert response.status_code == 403, response.text
    assert "too slow" in response.json()["detail"]
    assert rows(http, token, "SELECT 1") == [[1]]
    assert_ends_on_server("admin-end-marker")


def test_a_revoked_lease_closes_its_pool_and_the_next_request_logs_in_anew(http, gw):
    token = gw.token("vera", ("engineers",))
    [[first]] = rows(http, token, "SELECT CURRENT_USER()")
    assert gw.call(gw.gateway.services.broker.revoke_for(database="shop", reason="test revocation")) >= 1
    [[second]] = rows(http, token, "SELECT CURRENT_USER()")
    assert second != first
    login = first.split("@")[0]
    assert root_sql(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{login}'") == [(0,)]
