"""check(): the rule's guardrails — classes, WHERE, functions, tables, opaque and unparsable text."""

from __future__ import annotations

import pytest

from sqlgate.policy import Guardrails
from sqlgate.policy.sql import check, classify

WRITE_GRANT = Guardrails(deny=["ddl", "dcl", "admin"])


def _kind(guardrails, sql):
    violation = check(guardrails, classify(sql))
    return None if violation is None else violation.kind


@pytest.mark.parametrize(
    ("guardrails", "sql", "kind"),
    [
        (WRITE_GRANT, "UPDATE t SET a = 1 WHERE id = 1", None),
        (WRITE_GRANT, "UPDATE t SET a = 1", "unbounded"),
        (WRITE_GRANT, "DELETE FROM t WHERE true", "unbounded"),
        (Guardrails(require_where=False), "DELETE FROM t", None),
        (WRITE_GRANT, "CREATE TABLE t (a int)", "class"),
        (Guardrails(deny_functions=["pg_sleep"]), "SELECT 1 FROM t WHERE pg_sleep(10) IS NULL", "function"),
        (Guardrails(deny_functions=["pg_*"]), "SELECT pg_catalog.PG_SLEEP(1)", "function"),
        (Guardrails(deny_functions=["pg_*"]), "SELECT now()", None),
        (Guardrails(deny_tables=["salaries"]), "WITH x AS (SELECT * FROM salaries) SELECT 1", "table"),
        (Guardrails(deny_tables=["hr.*"]), "SELECT * FROM HR.people", "table"),
        (Guardrails(deny_tables=["hr.*"]), "SELECT * FROM people", None),
        (WRITE_GRANT, "DO $$ BEGIN END $$", "opaque"),
        (Guardrails(deny=["write"]), "DO $$ BEGIN END $$", None),
        (WRITE_GRANT, "this is not sql", "unparsable"),
        (Guardrails(deny=["write"]), "this is not sql", None),
        (None, "this is not sql", None),
        (None, "DROP TABLE t", None),
        (None, "SET ROLE postgres", "identity"),
    ],
)
def test_guardrails(guardrails, sql, kind):
    assert _kind(guardrails, sql) == kind


def test_the_violation_names_the_statement_index():
    violation = check(WRITE_GRANT, classify("SELECT 1; SELECT 2; DROP TABLE t"))
    assert violation is not None
    assert violation.statement == 2
    assert str(violation.error()) == "refused by guardrail: ddl statements are not allowed under this grant (DropStmt)"
