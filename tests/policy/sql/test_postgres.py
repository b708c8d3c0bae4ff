"""PostgreSQL classification: classes, functions and tables found anywhere, prepared names."""

from __future__ import annotations

import pytest

from sqlgate.policy.sql import classify


@pytest.mark.parametrize(
    ("sql", "classes"),
    [
        ("SELECT 1", {"read"}),
        ("INSERT INTO t VALUES (1)", {"write"}),
        ("SELECT 1 INTO t2", {"write", "ddl"}),
        ("CREATE TABLE t (a int)", {"ddl"}),
        ("GRANT SELECT ON t TO x", {"dcl"}),
        ("ALTER SYSTEM SET work_mem = '1MB'", {"admin"}),
        ("COPY t FROM STDIN", {"write"}),
        ("COPY t TO PROGRAM 'x'", {"read", "admin"}),
        ("BEGIN", {"transaction"}),
        ("SET search_path = x", {"session"}),
        ("SELECT pg_reload_conf()", {"read", "admin"}),
        ("CREATE EXTENSION x", {"admin"}),
        ("DROP EXTENSION x", {"admin"}),
        ("DROP VIEW v", {"ddl"}),
        ("PREPARE p AS UPDATE t SET a = 1 WHERE id = $1", {"write"}),
        ("CREATE PUBLICATION p FOR ALL TABLES", {"admin"}),
    ],
)
def test_classes(sql, classes):
    (statement,) = classify(sql).statements
    assert statement.classes == classes


def test_functions_and_tables_are_found_everywhere():
    sql = """
    WITH c AS (SELECT f1(x) FROM hr.salaries)
    SELECT f2(a), (SELECT f3() FROM sub)
    FROM main m JOIN LATERAL f4(m.id) l ON true
    WHERE EXISTS (SELECT 1 FROM other WHERE f5(y)) AND z IN (SELECT f6(q) FROM deep.er)
    ORDER BY f7(b)
    """
    result = classify(sql)
    assert {"f1", "f2", "f3", "f4", "f5", "f6", "f7"} <= result.functions
    assert {"salaries", "hr.salaries", "sub", "main", "other", "er", "deep.er"} <= result.tables


def test_unbounded_writes_are_listed():
    result = classify("UPDATE t SET a = 1; DELETE FROM u WHERE 1 = 1; DELETE FROM v WHERE id = 3")
    assert [s.unbounded for s in result.statements] == [("UPDATE t",), ("DELETE FROM u",), ()]


def test_prepared_names():
    prepare, execute, deallocate = classify("PREPARE a AS SELECT 1; EXECUTE a; DEALLOCATE a").statements
    assert (prepare.prepares, execute.executes, deallocate.deallocates) == ("a", "a", "a")
    assert classify("EXECUTE a; EXECUTE b(1)").executes == ("a", "b")
    assert classify("DEALLOCATE ALL").statements[0].deallocates == "*"


def test_unparsable_sets_error_and_no_statements():
    result = classify("SELECT FROM WHERE (")
    assert not result.parsed
    assert result.statements == ()
    assert result.error is not None
    assert "syntax error" in result.error


def test_deep_nesting_does_not_raise():
    result = classify("SELECT " + "(" * 5000 + "1" + ")" * 5000)
    assert result.parsed or result.error


def test_empty_text_has_no_statements():
    assert classify("").statements == ()
    assert classify(" ; ; ").statements == ()
