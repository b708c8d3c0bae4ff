"""check(): a grant's guardrails applied to a classification -> the first violation, or None.

Always refused, whatever the grant (and in ``mode: audit`` too, see
:attr:`Violation.always_enforced`): statements that would change the session's
identity, including ``set_config()`` whose setting name is computed or a bind
parameter whose value is not known. Refused when the grant has any guardrails
unless they allow ``ddl`` (fail closed): text that does not parse and statements
whose effect cannot be seen (``DO`` blocks, dynamic SQL). Then the rule's own
guardrails: denied classes, UPDATE/DELETE without WHERE (a MERGE that updates or
deletes counts as one: it has no WHERE clause), functions and tables by name (globs).

Bind parameters: ``SELECT set_config($1, $2, false)`` is refused by :func:`check`,
which does not know what ``$1`` will be. The access pipeline, at a Parse whose
values come later, calls ``check(..., defer_bound=True)`` and then, at each Bind,
:func:`check_bound` with the parameter values; every other caller keeps the default
and the call is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from sqlgate.errors import GuardrailViolation
from sqlgate.policy.model import Guardrails
from sqlgate.policy.sql.catalog import is_identity_setting
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

    @property
    def always_enforced(self) -> bool:
        """True when the statement is refused whatever the grant, also under guardrails in ``mode: audit``."""
        return self.kind == "identity"


def check(
    guardrails: Guardrails | None,
    classification: Classification,
    *,
    prepared: PreparedRegistry | None = None,
    defer_bound: bool = False,
) -> Violation | None:
    """The first statement ``guardrails`` refuse, or None when every statement may run.

    ``defer_bound``: True only where the parameter values arrive later (a Parse) and the
    caller will call :func:`check_bound` with them; otherwise a ``set_config()`` whose
    setting name is a bind parameter is refused.
    """
    if not classification.parsed:
        if _allows_ddl(guardrails):
            return None
        return Violation("unparsable", f"the statement does not parse ({classification.error}); it cannot be checked")
    earlier: dict[str, Classification | None] = {}  # PREPARE / DEALLOCATE earlier in this same text
    for index, statement in enumerate(classification.statements):
        violation = (
            _check_identity(statement, defer_bound)
            or _check_statement(guardrails, statement)
            or _check_executed(guardrails, statement, earlier, prepared)
        )
        if violation is not None:
            return Violation(violation.kind, violation.reason, index)
        if statement.prepares:
            earlier[statement.prepares] = Classification((statement,), classification.dialect)
        if statement.deallocates == "*":
            earlier.clear()
        if statement.deallocates:
            earlier[statement.deallocates] = None
    return None


def check_bound(classification: Classification, params: Sequence[str | None]) -> Violation | None:
    """The first ``set_config()`` whose setting name, bound as a parameter, changes the session's identity.

    ``params`` are the Bind message's values as text, in order (``params[0]`` is ``$1``);
    a missing or NULL value is refused (fail closed). Cheap: only the parameter numbers
    the classification recorded are looked at.
    """
    for index, statement in enumerate(classification.statements):
        for number in statement.bound_settings:
            value = params[number - 1] if number <= len(params) else None
            if value is None:
                reason = f"set_config() takes its setting name from parameter ${number}, which has no value"
                return Violation("identity", f"{reason}; sessions keep the caller's identity", index)
            if is_identity_setting(value):
                reason = f"set_config({value.strip()[:64]!r}) from parameter ${number} would change the session's role"
                return Violation("identity", f"{reason}; sessions keep the caller's identity", index)
    return None


def _check_identity(statement: Statement, defer_bound: bool) -> Violation | None:
    if statement.identity is not None:
        return Violation("identity", f"{statement.identity}; sessions keep the caller's identity")
    if statement.bound_settings and not defer_bound:
        numbers = ", ".join(f"${n}" for n in statement.bound_settings)
        return Violation(
            "identity",
            f"set_config() takes its setting name from parameter {numbers}, which could change the session's role;"
            " sessions keep the caller's identity",
        )
    return None


def _check_statement(guardrails: Guardrails | None, statement: Statement) -> Violation | None:  # noqa: PLR0911
    if guardrails is None:
        return None
    if statement.opaque is not None and not _allows_ddl(guardrails):
        return Violation("opaque", statement.opaque)
    denied = [cls for cls in guardrails.deny if cls in statement.classes]
    if denied:
        return Violation("class", f"{', '.join(denied)} statements are not allowed under this grant ({statement.kind})")
    if guardrails.require_where and statement.unbounded:
        return Violation("unbounded", _unbounded_reason(statement.unbounded[0]))
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
    if name is None:
        return None
    if name in earlier:
        target = earlier[name]
    elif "*" in earlier:
        target = None
    else:
        target = prepared.lookup(name) if prepared is not None else None
    if target is None:
        if guardrails is None:
            return None
        return Violation("prepared", f"EXECUTE {name}: what it prepared is unknown, so it cannot be checked")
    inner = check(guardrails, target)  # without guardrails too: its identity changes (set_config($1, ...))
    if inner is None:
        return None
    return Violation(inner.kind, f"EXECUTE {name}: {inner.reason}")


def _unbounded_reason(target: str) -> str:
    if target.startswith("MERGE"):
        return (
            f"{target} has no WHERE clause (its ON and WHEN conditions do not count as one), which require_where"
            " does not allow; use UPDATE ... WHERE or DELETE ... WHERE"
        )
    return f"{target} without a WHERE clause on a column is not allowed"


def _allows_ddl(guardrails: Guardrails | None) -> bool:
    return guardrails is None or "ddl" not in guardrails.deny
