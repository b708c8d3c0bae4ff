"""check(): a grant's guardrails applied to a classification -> the first violation, or None.

Always refused, whatever the grant: statements that would change the session's
identity. Refused unless the grant allows ``ddl``: text that does not parse and
statements whose effect cannot be seen (``DO`` blocks, dynamic SQL). Then the
rule's own guardrails: denied classes, UPDATE/DELETE without WHERE, functions
and tables by name (globs).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from sqlgate.errors import GuardrailViolation
from sqlgate.policy.model import Guardrails
from sqlgate.policy.sql.prepared import PreparedRegistry
from sqlgate.policy.sql.result import Classification, Statement


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a statement is refused: ``kind`` for metrics and audit, ``reason`` for people."""

    kind: str
    reason: str
    statement: int = 0

    def error(self) -> GuardrailViolation:
        """The error the proxy and API send (SQLSTATE 42501)."""
        return GuardrailViolation(f"refused by guardrail: {self.reason}")


def check(
    guardrails: Guardrails | None, classification: Classification, *, prepared: PreparedRegistry | None = None
) -> Violation | None:
    """The first statement ``guardrails`` refuse, or None when every statement may run."""
    if not classification.parsed:
        if _allows_ddl(guardrails):
            return None
        return Violation("unparsable", f"the statement does not parse ({classification.error}); it cannot be checked")
    for index, statement in enumerate(classification.statements):
        violation = _check_statement(guardrails, statement, prepared) or _check_executed(
            guardrails, statement, prepared
        )
        if violation is not None:
            return Violation(violation.kind, violation.reason, index)
    return None


def _check_statement(  # noqa: PLR0911 - one exit per kind of refusal
    guardrails: Guardrails | None, statement: Statement, prepared: PreparedRegistry | None
) -> Violation | None:
    del prepared
    if statement.identity is not None:
        return Violation("identity", f"{statement.identity}; sessions keep the caller's identity")
    if guardrails is None:
        return None
    if statement.opaque is not None and not _allows_ddl(guardrails):
        return Violation("opaque", statement.opaque)
    denied = [cls for cls in guardrails.deny if cls in statement.classes]
    if denied:
        return Violation("class", f"{', '.join(denied)} statements are not allowed under this grant ({statement.kind})")
    if guardrails.require_where and statement.unbounded:
        return Violation("unbounded", f"{statement.unbounded[0]} without a WHERE clause on a column is not allowed")
    for function in sorted(statement.functions):
        if any(fnmatchcase(function, pattern.lower()) for pattern in guardrails.deny_functions):
            return Violation("function", f"function {function}() is not allowed under this grant")
    for table in sorted(statement.tables):
        if any(fnmatchcase(table, pattern.lower()) for pattern in guardrails.deny_tables):
            return Violation("table", f"table {table} is not allowed under this grant")
    return None


def _check_executed(
    guardrails: Guardrails | None, statement: Statement, prepared: PreparedRegistry | None
) -> Violation | None:
    name = statement.executes
    if name is None or guardrails is None:
        return None
    target = prepared.lookup(name) if prepared is not None else None
    if target is None:
        return Violation("prepared", f"EXECUTE {name}: what it prepared is unknown, so it cannot be checked")
    inner = check(guardrails, target)
    if inner is None:
        return None
    return Violation(inner.kind, f"EXECUTE {name}: {inner.reason}")


def _allows_ddl(guardrails: Guardrails | None) -> bool:
    return guardrails is None or "ddl" not in guardrails.deny
