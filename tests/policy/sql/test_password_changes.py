r"""Statements that set a login's password are identity changes, refused whatever the grant (psql's ``\password``)."""

from __future__ import annotations

import pytest

from sqlgate.policy import Guardrails
from sqlgate.policy.sql import check, classify

SCRAM = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"

PASSWORD_CHANGES = [
    f"ALTER USER wade PASSWORD '{SCRAM}'",  # what psql's \password sends
    "ALTER ROLE wade WITH PASSWORD 'secret'",
    "ALTER ROLE wade ENCRYPTED PASSWORD 'secret' VALID UNTIL 'infinity'",
    "ALTER USER CURRENT_USER PASSWORD 'secret'",
    "ALTER ROLE wade PASSWORD NULL",
    "CREATE ROLE mallory LOGIN PASSWORD 'secret'",
    "CREATE USER mallory WITH PASSWORD 'secret'",
    "SELECT 1; ALTER USER wade PASSWORD 'secret'",
]


@pytest.mark.parametrize("sql", PASSWORD_CHANGES)
@pytest.mark.parametrize("guardrails", [None, Guardrails(deny=[]), Guardrails(deny=["ddl", "dcl", "admin"])])
def test_a_password_change_is_refused_as_an_identity_change(sql, guardrails):
    violation = check(guardrails, classify(sql))
    assert violation is not None
    assert violation.kind == "identity"
    assert "the gateway issues the session's login and its password cannot be changed" in violation.reason


@pytest.mark.parametrize("sql", PASSWORD_CHANGES)
def test_the_reason_never_repeats_the_password(sql):
    reason = classify(sql).statements[-1].identity
    assert reason is not None
    assert "secret" not in reason
    assert SCRAM not in reason


@pytest.mark.parametrize(
    "sql",
    ["ALTER ROLE wade SET work_mem = '1MB'", "CREATE ROLE reporting NOLOGIN", "ALTER ROLE wade RENAME TO w"],
)
def test_role_statements_without_a_password_are_not_identity_changes(sql):
    assert classify(sql).statements[0].identity is None
