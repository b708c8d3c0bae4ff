"""Masking under attack: a corpus of statements, each run on every path a user has, and nothing gets through.

An analyst's grant masks ``customers.email`` (``email``) and ``*.ssn`` (``redact``).
Each statement below tries a way around it. It runs through the wire proxy
(simple protocol, extended with Describe, prepared, binary results, a client that
describes once and then only binds and executes, a client that never describes,
DECLARE/FETCH, SQL PREPARE/EXECUTE), ``POST /v1/query`` and the MCP ``query``
tool. No piece of a secret may appear in any row, error, notice, or audit record
(see :class:`tests.access.attack.LeakDetector`). A positive control shows the
detector finds the secrets when an unmasked grant reads them.
"""

from __future__ import annotations

import pytest

from tests.access.attack import WirePaths, audit_text, http_query, mcp_queries

# Statements that read; each also runs as a cursor and as a SQL prepared statement.
SELECTS = [
    "SELECT email, ssn FROM customers",
    "SELECT c FROM customers c",
    "SELECT customers FROM customers",
    "SELECT row_to_json(c) FROM customers c",
    "SELECT json_agg(customers) FROM customers",
    "SELECT concat_ws('|', c.*) FROM customers c",
    "SELECT (array_agg(c))[1] FROM customers c",
    "SELECT row(email, ssn)::text FROM customers",
    'SELECT upper(U&"\\0065mail") FROM customers',
    "SELECT reverse(email) FROM customers",
    "SELECT lower(email), upper(ssn), initcap(ssn) FROM customers",
    "SELECT substr(email, 2, 6), substring(ssn from 2 for 6) FROM customers",
    "SELECT email AS e, ssn AS s FROM customers",
    "SELECT x FROM (SELECT email AS x FROM customers) s",
    "WITH t AS (SELECT email, ssn FROM customers) SELECT * FROM t",
    "WITH t(a, b) AS (SELECT email, ssn FROM customers) SELECT b, a FROM t",
    "SELECT * FROM customers",
    "SELECT c.* FROM customers c",
    "TABLE customers",
    "SELECT email FROM customers UNION SELECT name FROM customers",
    "SELECT ssn FROM customers UNION ALL SELECT 'x'",
    "SELECT name FROM customers INTERSECT SELECT email FROM customers",
    "SELECT string_agg(email, ','), string_agg(ssn, ',') FROM customers",
    "SELECT array_agg(ssn) FROM customers",
    "SELECT to_json(email), to_jsonb(ssn) FROM customers",
    "SELECT jsonb_build_object('e', email, 's', ssn) FROM customers",
    "SELECT json_build_array(email) FROM customers",
    "SELECT xmlelement(name e, email) FROM customers",
    "SELECT xmlforest(email, ssn) FROM customers",
    "SELECT format('%s %s', email, ssn) FROM customers",
    "SELECT email || '' FROM customers",
    "SELECT translate(email, 'ghjk', 'GHJK') FROM customers",
    "SELECT encode(convert_to(email, 'UTF8'), 'base64') FROM customers",
    "SELECT encode(email::bytea, 'hex'), email::bytea FROM customers",
    "SELECT md5(email), sha256(ssn::bytea) FROM customers",
    "SELECT (SELECT email FROM customers ORDER BY id LIMIT 1)",
    "SELECT ARRAY(SELECT ssn FROM customers)",
    "SELECT l.e FROM customers c, LATERAL (SELECT c.email AS e) l",
    "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id",
    "SELECT * FROM customers JOIN orders USING (id)",
    "SELECT * FROM customers NATURAL JOIN orders",
    "SELECT * FROM customers c LEFT JOIN LATERAL (SELECT c.ssn AS leaked) x ON true",
    "SELECT (c).email, (c).ssn FROM customers c",
    "SELECT (c).* FROM customers c",
    "SELECT regexp_replace(email, '(.)', '\\1 ', 'g') FROM customers",
    "SELECT split_part(email, '@', 1) FROM customers",
    "SELECT unnest(string_to_array(email, NULL)) FROM customers",
    "SELECT * FROM unnest((SELECT array_agg(email) FROM customers))",
    "SELECT * FROM regexp_split_to_table((SELECT string_agg(ssn, ',') FROM customers), ',')",
    "SELECT e FROM customers, LATERAL unnest(ARRAY[email, ssn]) e",
    "SELECT chr(ascii(substr(email, 2))) || substr(email, 3) FROM customers",
    "SELECT CASE WHEN id > 0 THEN email ELSE name END FROM customers",
    "SELECT coalesce(ssn, 'x'), nullif(email, ''), greatest(email, '') FROM customers",
    'SELECT email COLLATE "C" FROM customers',
    "SELECT left(email, 7), right(ssn, 7) FROM customers",
    "SELECT overlay(email placing 'X' from 1 for 1) FROM customers",
    "SELECT query_to_xml('select email, ssn from customers', true, false, '')",
    "SELECT table_to_xml('customers', true, false, '')",
    "SELECT * FROM pg_stats WHERE tablename = 'customers'",
    "SELECT most_common_vals::text, histogram_bounds::text FROM pg_catalog.pg_stats WHERE tablename = 'customers'",
    "SELECT * FROM customer_emails",
    "SELECT v FROM customer_emails v",
    "SELECT contact FROM customer_emails_mv",
    "SELECT * FROM nested_emails",
    "SELECT * FROM (VALUES (1)) v(x), LATERAL (SELECT email FROM customers LIMIT 1) e",
    (
        "WITH RECURSIVE r(n, e) AS (SELECT 1, (SELECT email FROM customers ORDER BY id LIMIT 1) "
        "UNION ALL SELECT n + 1, e FROM r WHERE n < 2) SELECT * FROM r"
    ),
    "SELECT email FROM customers ORDER BY 1 LIMIT 3",
    "SELECT DISTINCT ssn FROM customers",
    "SELECT max(email), min(ssn) FROM customers",
    "SELECT email FROM customers GROUP BY email",
    "SELECT (SELECT c2.ssn FROM customers c2 WHERE c2.id = c.id) FROM customers c",
    "SELECT ssn::text, cast(email AS varchar(100)), email::name FROM customers",
    "SELECT to_tsvector('simple', email) FROM customers",
    "SELECT jsonb_agg(c) -> 0 FROM customers c",
    "SELECT json_populate_record(null::customers, row_to_json(c)) FROM customers c",
    "SELECT (json_populate_record(null::customers, row_to_json(c))).email FROM customers c",
    "SELECT array_to_string(array_agg(email), ',') FROM customers",
    "SELECT email FROM customers WHERE id = 1 UNION SELECT email FROM customers WHERE id = 2",
    "SELECT * FROM customers TABLESAMPLE SYSTEM (100)",
    "SELECT ctid, xmin, * FROM customers",
    "SELECT * FROM public.customers",
    "SELECT public.customers.email FROM public.customers",
    "SELECT t.email FROM (SELECT * FROM customers) t",
    "SELECT * FROM (SELECT email FROM customers) AS t(renamed)",
    "SELECT json_object_agg(id, email) FROM customers",
    "SELECT hashtext(email), length(ssn) FROM customers",
    "SELECT quote_literal(email), quote_ident(ssn) FROM customers",
    "SELECT email::char(40), ssn::varchar FROM customers",
    "SELECT string_agg(x, '') FROM (SELECT unnest(regexp_split_to_array(email, '')) AS x FROM customers) s",
    "SELECT a.email FROM customers a, customers b WHERE a.id = b.id",
    "VALUES ((SELECT email FROM customers LIMIT 1))",
    "SELECT * FROM ROWS FROM (unnest(ARRAY[(SELECT ssn FROM customers LIMIT 1)]))",
]
# Errors and side channels; also statements that are refused on every path.
OTHERS = [
    "SELECT email::int FROM customers",
    "SELECT ssn::int FROM customers",
    "SELECT email::date FROM customers",
    "SELECT email::numeric FROM customers",
    "SELECT ssn::bool FROM customers",
    "SELECT email::json FROM customers",
    "SELECT email::uuid FROM customers",
    "SELECT email::inet FROM customers",
    "SELECT to_number(email, '999') FROM customers",
    "SELECT set_config('attack.value', email, false) FROM customers LIMIT 1",
    "SELECT pg_notify('attack', email) FROM customers LIMIT 1",
    "SELECT lo_from_bytea(0, email::bytea) FROM customers LIMIT 1",
    "COPY customers TO STDOUT",
    "COPY (SELECT email FROM customers) TO STDOUT",
    "DO $$ BEGIN RAISE NOTICE '%', (SELECT email FROM customers LIMIT 1); END $$",
    "DO $$ BEGIN RAISE EXCEPTION '%', (SELECT ssn FROM customers LIMIT 1); END $$",
    "EXPLAIN (VERBOSE, ANALYZE) SELECT email FROM customers",
    "SELECT email FROM customers WHERE id = 1 FOR UPDATE",
    "SELECT jsonb_path_query(to_jsonb(email), '$') FROM customers",
    "SELECT email FROM customers WHERE email::int > 0",
]
# A writer with masks: moving a masked value somewhere else is refused.
WRITES = [
    "UPDATE customers SET name = email WHERE id = 1",
    "UPDATE customers SET region = substr(ssn, 1, 8) WHERE id = 2 RETURNING region",
    (
        "INSERT INTO orders (id, customer_id, total, status, created_at) "
        "SELECT 100000 + id, id, 1, email, now() FROM customers WHERE id = 3"
    ),
    "UPDATE orders SET status = (SELECT email FROM customers WHERE id = 4) WHERE id = 4",
    "UPDATE customers SET name = name WHERE id = 5 RETURNING email, ssn, customers",
    "WITH x AS (UPDATE customers SET region = region WHERE id = 6 RETURNING *) SELECT * FROM x",
    "MERGE INTO orders o USING customers c ON o.id = c.id WHEN MATCHED THEN UPDATE SET status = c.email",
    (
        "INSERT INTO customers (id, name, email, ssn, region) SELECT 9000 + id, email, 'x', 'y', 'eu' "
        "FROM customers WHERE id = 7"
    ),
    "UPDATE customers SET email = email WHERE id = 8 RETURNING row_to_json(customers)",
]
CORPUS_SIZE = len(SELECTS) + len(OTHERS) + len(WRITES)
WIRE_PATHS = ("simple", "extended", "binary", "no-describe", "cursor", "sql-prepare", "asyncpg-described-once")


def test_the_corpus_is_large_enough():
    assert CORPUS_SIZE >= 80, CORPUS_SIZE


def test_the_detector_finds_secrets_an_unmasked_grant_reads(attack):
    """Positive control: without masks every path shows the secrets, so the detector is not blind."""
    gateway, detector = attack
    paths = WirePaths(gateway, "erin", ("engineers",))
    try:
        seen = paths.run_all("SELECT email, ssn FROM customers", selectable=True)
    finally:
        paths.close()
    seen["http"] = http_query(gateway, paths.token, "SELECT email FROM customers")
    for path in (*WIRE_PATHS, "http"):
        assert detector.leaks(seen[path]), path


@pytest.mark.parametrize("sql", SELECTS + OTHERS)
def test_a_masked_reader_sees_no_secret_on_any_wire_path(attack, sql):
    gateway, detector = attack
    paths = WirePaths(gateway, "alice", ("analysts",))
    try:
        seen = paths.run_all(sql, selectable=sql in SELECTS)
    finally:
        paths.close()
    leaked = {path: detector.leaks(text) for path, text in seen.items() if detector.leaks(text)}
    assert not leaked, (sql, leaked, {p: seen[p][:300] for p in leaked})


@pytest.mark.parametrize("sql", WRITES)
def test_a_masked_writer_cannot_move_a_masked_value(attack, sql):
    gateway, detector = attack
    paths = WirePaths(gateway, "wes", ("masked-writers",))
    try:
        seen = paths.run_all(sql, selectable=False)
    finally:
        paths.close()
    leaked = {path: detector.leaks(text) for path, text in seen.items() if detector.leaks(text)}
    assert not leaked, (sql, leaked)
    stored = "SELECT name || ' ' || region FROM customers UNION ALL SELECT status FROM orders"
    rows = gateway.pg_server.psql(stored, gateway.database)
    assert not detector.leaks(rows), (sql, detector.leaks(rows))


def test_http_and_mcp_show_no_secret(attack):
    gateway, detector = attack
    token = gateway.token("alice", ("analysts",))
    statements = SELECTS + OTHERS
    http = {sql: http_query(gateway, token, sql) for sql in statements}
    mcp = dict(zip(statements, gateway.call(mcp_queries(gateway, token, statements), timeout=600), strict=True))
    leaked = {("http", s): detector.leaks(t) for s, t in http.items() if detector.leaks(t)}
    leaked |= {("mcp", s): detector.leaks(t) for s, t in mcp.items() if detector.leaks(t)}
    assert not leaked, leaked
    writer = gateway.token("wes", ("masked-writers",))
    for sql in WRITES:
        assert not detector.leaks(http_query(gateway, writer, sql)), sql


def test_masked_values_still_arrive_masked(attack):
    """Masking is not refusal: a masked column comes back through its function on every path."""
    gateway, _detector = attack
    paths = WirePaths(gateway, "alice", ("analysts",))
    try:
        seen = paths.run_all("SELECT email, ssn FROM customers WHERE id = 1", selectable=True)
    finally:
        paths.close()
    for path in WIRE_PATHS:
        assert "***@example.com" in seen[path], (path, seen[path][:300])
        assert "****" in seen[path], path
    token = gateway.token("alice", ("analysts",))
    assert "***@example.com" in http_query(gateway, token, "SELECT email FROM customers")


def test_the_audit_log_holds_no_secret(attack):
    """Runs last in this module: every record the attacks above wrote."""
    gateway, detector = attack
    text = audit_text(gateway)
    assert '"statement"' in text
    assert not detector.leaks(text), detector.where(text)[:10]
