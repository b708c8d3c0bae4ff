"""Guardrails fail closed: unreadable text, DO blocks, MERGE under require_where, set_config() with a bound name."""

from __future__ import annotations

import pytest

from sqlgate.policy import Guardrails, decide
from sqlgate.policy.sql import PreparedRegistry, check, check_bound, classify, clear_caches, uncached_classify
from tests.policy.support import person, policy_from, utc

WRITE_GRANT = Guardrails(deny=["ddl", "dcl", "admin"])
AUDITED_WRITE_GRANT = Guardrails(deny=["ddl", "dcl", "admin"], mode="audit")
READ_ONLY = Guardrails(deny=["write", "ddl", "dcl", "admin"])

UNREADABLE = [
    "this is not sql",
    "SELEC 1",
    "SELECT 'unterminated",
    "DO $$ BEGIN EXECUTE 'DELETE FROM t'; END $$",
    "DO LANGUAGE plpgsql $$ BEGIN PERFORM pg_sleep(0); END $$",
    "SELECT 1; DO $$ BEGIN END $$",
]


@pytest.mark.parametrize("sql", UNREADABLE)
@pytest.mark.parametrize("guardrails", [WRITE_GRANT, AUDITED_WRITE_GRANT, READ_ONLY])
def test_unreadable_sql_and_do_blocks_are_refused_unless_ddl_is_allowed(guardrails, sql):
    """Any guardrails that deny ddl (also in audit mode, which the pipeline records as would_deny) refuse them."""
    violation = check(guardrails, classify(sql))
    assert violation is not None
    assert violation.kind in {"unparsable", "opaque"}
    assert not violation.always_enforced  # audit mode may let it run, recorded as would_deny
    allows_ddl = Guardrails(deny=["write"], mode="audit")
    assert check(allows_ddl, classify(sql)) is None


def test_combined_guardrails_refuse_a_do_block_when_one_rule_denies_ddl():
    """The first rule allows ddl, the second does not: the combination refuses (once, the first rule decided)."""
    policy = policy_from("""
rules:
  - {name: loose, who: {groups: [g]}, databases: [d], role: write, guardrails: {deny: [dcl]}}
  - {name: strict, who: {groups: [g]}, databases: [d], role: write, guardrails: {deny: [ddl]}}
""")
    decision = decide(policy, person("x", "g"), "d", at=utc("2026-11-25 12:00"))
    violation = check(decision.guardrails, classify("DO $$ BEGIN DROP TABLE t; END $$"))
    assert violation is not None
    assert violation.kind == "opaque"


MERGE_UPDATES = [
    "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
    "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
    "WITH s AS (SELECT 1 AS id) MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
    (
        "WITH s AS (SELECT id FROM staging WHERE id > 3) MERGE INTO t USING s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET a = 1"
    ),
    # several WHEN clauses: an insert first, then an update
    "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id) WHEN MATCHED THEN UPDATE SET a = 1",
    (
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.gone THEN DELETE "
        "WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id)"
    ),
    # a condition on WHEN MATCHED AND ... is not a WHERE clause (fail closed)
    "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND t.id = 5 THEN DELETE",
    "MERGE INTO t USING (SELECT 5 AS id) s ON t.id = s.id WHEN MATCHED AND t.id = s.id THEN UPDATE SET a = 0",
    "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.skip THEN DO NOTHING WHEN MATCHED THEN UPDATE SET a = 2",
    # rows of the target the source does not match at all
    "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE",
    "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE AND t.a > 1 THEN UPDATE SET a = 0",
    # nested in a CTE, and in SQL PREPARE
    "WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.*) SELECT * FROM m",
    "PREPARE p AS MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = $1",
]

MERGE_INSERTS = [
    "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
    "WITH s AS (SELECT 1 AS id) MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)",
    "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id) WHEN MATCHED THEN DO NOTHING",
]


@pytest.mark.parametrize("sql", MERGE_UPDATES)
def test_merge_that_updates_or_deletes_is_refused_under_require_where(sql):
    violation = check(WRITE_GRANT, classify(sql))
    assert violation is not None
    assert violation.kind == "unbounded"
    assert "use UPDATE ... WHERE or DELETE ... WHERE" in violation.reason
    assert violation.reason.startswith("MERGE INTO t (WHEN ")
    assert check(Guardrails(deny=["ddl"], require_where=False), classify(sql)) is None


def test_the_refusal_names_the_action():
    sql = "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE AND t.a > 1 THEN UPDATE SET a = 0"
    violation = check(WRITE_GRANT, classify(sql))
    assert violation is not None
    assert violation.reason.startswith("MERGE INTO t (WHEN NOT MATCHED BY SOURCE THEN UPDATE) has no WHERE clause")
    assert str(violation.error()).startswith("refused by guardrail: MERGE INTO t (WHEN NOT MATCHED BY SOURCE THEN")


@pytest.mark.parametrize("sql", MERGE_INSERTS)
def test_merge_that_only_inserts_is_a_plain_insert(sql):
    """Control: allowed where an INSERT is, refused where writes are."""
    assert classify(sql).statements[0].unbounded == ()
    assert check(WRITE_GRANT, classify(sql)) is None
    refused = check(READ_ONLY, classify(sql))
    assert refused is not None
    assert refused.kind == "class"


SET_BY_PARAMETER = "SELECT set_config($1, $2, false)"


@pytest.mark.parametrize(
    ("sql", "numbers"),
    [
        (SET_BY_PARAMETER, (1,)),
        ("SELECT set_config($1::text, $2, false)", (1,)),
        ("SELECT set_config($2, $1, true)", (2,)),
        ("SELECT set_config($3, 'a', false), set_config($1, $2, false)", (1, 3)),
        ("SELECT 1 FROM t WHERE set_config($1, 'x', true) IS NOT NULL", (1,)),
    ],
)
def test_the_classification_records_which_parameters_name_settings(sql, numbers):
    assert classify(sql).statements[0].bound_settings == numbers


@pytest.mark.parametrize(
    "name",
    ["role", "ROLE", " role ", "Role\t", "session_authorization", "  SESSION_AUTHORIZATION\n", "Session_Authorization"],
)
def test_a_bound_identity_setting_is_refused(name):
    violation = check_bound(classify(SET_BY_PARAMETER), [name, "postgres"])
    assert violation is not None
    assert violation.kind == "identity"
    assert violation.always_enforced
    assert "from parameter $1 would change the session's role" in violation.reason


@pytest.mark.parametrize("name", ["application_name", "search_path", "statement_timeout", "sqlgate.subject"])
def test_a_bound_harmless_setting_passes(name):
    classification = classify(SET_BY_PARAMETER)
    assert check(WRITE_GRANT, classification, defer_bound=True) is None  # at Parse
    assert check_bound(classification, [name, "x"]) is None  # at Bind


def test_the_right_parameter_is_looked_at():
    classification = classify("SELECT set_config($2, $1, false)")
    assert check_bound(classification, ["role", "application_name"]) is None
    assert check_bound(classification, ["application_name", "role"]) is not None


@pytest.mark.parametrize("params", [[None, "x"], [], [None]])
def test_a_missing_or_null_setting_name_is_refused(params):
    violation = check_bound(classify(SET_BY_PARAMETER), params)
    assert violation is not None
    assert "which has no value" in violation.reason


def test_check_without_values_keeps_refusing():
    """Without the values (no defer_bound), the statement is refused as an identity change, even with no guardrails."""
    for guardrails in (None, WRITE_GRANT):
        violation = check(guardrails, classify(SET_BY_PARAMETER))
        assert violation is not None
        assert violation.kind == "identity"
        assert "parameter $1" in violation.reason


def test_deferring_never_lets_a_constant_identity_setting_through():
    assert check(None, classify("SELECT set_config('role', $1, false)"), defer_bound=True) is not None
    assert check(None, classify("SELECT set_config(lower($1), 'x', false)"), defer_bound=True) is not None


def test_execute_of_a_statement_prepared_with_a_bound_setting_is_refused_without_guardrails():
    """A protocol-level Parse deferred its check to Bind; a later SQL EXECUTE has no Bind, so it is refused."""
    registry = PreparedRegistry()
    registry.register("s1", classify(SET_BY_PARAMETER))
    violation = check(None, classify("EXECUTE s1('role', 'postgres')"), prepared=registry)
    assert violation is not None
    assert violation.kind == "identity"
    assert violation.reason.startswith("EXECUTE s1: set_config() takes its setting name from parameter $1")


@pytest.mark.parametrize(
    ("warm", "probe"),
    [
        ("SELECT set_config($2, $1, false)", "SELECT set_config('role', $1, false)"),
        ("SELECT set_config('application_name', $1, false)", "SELECT set_config($2, $1, false)"),
        ("SELECT set_config($1, $2, false)", "SELECT set_config('role', 'x', false)"),
    ],
)
def test_a_bound_setting_never_shares_a_cache_entry_with_a_constant_one(warm, probe):
    """``set_config('role', $1, ...)`` and ``set_config($2, $1, ...)`` normalize alike; each is classified itself."""
    clear_caches()
    classify(warm)
    assert classify(probe) == uncached_classify(probe)
