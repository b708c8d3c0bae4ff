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
    earlier: dict[str, Classification | None] = {}  # PREPARE / DEALLOCATE earlier in this same text
    for index, statement in enumerate(classification.statements):
        violation = _check_statement(guardrails, statement) or _check_executed(guardrails, statement, earlier, prepared)
        if violation is not None:
            return Violation(violation.kind, violation.reason, index)
        if statement.prepares:
            earlier[statement.prepares] = Classification((statement,), classification.dialect)
        if statement.deallocates == "*":
            earlier.clear()
        if statement.deallocates:
            earlier[statement.deallocates] = None
    return None


def _check_statement(guardrails: Guardrails | None, statement: Statement) -> Violation | None:  # noqa: PLR0911
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
    guardrails: Guardrails | None,
    statement: Statement,
    earlier: dict[str, Classification | None],
    prepared: PreparedRegistry | None,
) -> Violation | None:
    name = statement.executes
    if name is None or guardrails is None:
        return None
    if name in earlier:
        target = earlier[name]
    elif "*" in earlier:
        target = None
    else:
        target = prepared.lookup(name) if prepared is not None else None
    if target is None:
        return Violation("prepared", f"EXECUTE {name}: what it prepared is unknown, so it cannot be checked")
    inner = check(guardrails, target)
    if inner is None:
        return None
    return Violation(inner.kind, f"EXECUTE {name}: {inner.reason}")


def _allows_ddl(guardrails: Guardrails | None) -> bool:
    return guardrails is None or "ddl" not in guardrails.deny
