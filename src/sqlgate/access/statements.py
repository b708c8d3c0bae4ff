"""One statement, for every front end: the guardrail verdict and the bounds of its audit record.

The verdict applies a grant's guardrails to a parsed statement (see
:mod:`sqlgate.policy.sql.check`). Under ``guardrails.mode: audit`` a statement the
guardrails would refuse runs, and its record says ``would_deny`` with the reason;
statements that would change the session's identity are refused in either mode.
``set_config()`` whose setting name is a bind parameter is checked once the
value is known (:func:`bound_refusal`): at Bind on the wire, with the request's
parameters on HTTP.

The statement record keeps at most :data:`MAX_SQL_AUDITED` characters of SQL and
:data:`MAX_PARAMS_AUDITED` parameters of :data:`MAX_PARAM_CHARS` characters each,
on every path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlgate.policy.model import Guardrails
from sqlgate.policy.sql import Classification, PreparedRegistry, check, check_bound

MAX_SQL_AUDITED = 16_384
MAX_PARAMS_AUDITED = 32
MAX_PARAM_CHARS = 256
HINT = "the grant's guardrails refuse this statement; ask for a role that allows it (sqlgate policy explain)"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guardrails say: ``refusal`` (42501, the statement does not run) or ``would_deny`` (it runs)."""

    refusal: str | None = None
    would_deny: str | None = None


ALLOWED = Verdict()


def guardrail_verdict(
    guardrails: Guardrails | None,
    classification: Classification,
    *,
    prepared: PreparedRegistry | None = None,
    defer_bound: bool = False,
) -> Verdict:
    """The guardrails' verdict on ``classification`` (``defer_bound``: parameters are checked at Bind)."""
    violation = check(guardrails, classification, prepared=prepared, defer_bound=defer_bound)
    if violation is None:
        return ALLOWED
    message = violation.error().message
    if guardrails is not None and guardrails.mode == "audit" and not violation.always_enforced:
        return Verdict(would_deny=message)
    return Verdict(refusal=message)


def has_bound_settings(classification: Classification) -> bool:
    """True when a ``set_config()`` of the statement takes its setting name from a parameter."""
    return any(statement.bound_settings for statement in classification.statements)


def bound_refusal(classification: Classification, params: Sequence[str | None]) -> str | None:
    """The refusal for ``set_config()`` calls whose bound setting names would change identity, else None."""
    violation = check_bound(classification, params)
    return None if violation is None else violation.error().message


def audited_sql(sql: str) -> str:
    """The statement's text as its audit record keeps it."""
    return sql[:MAX_SQL_AUDITED]


def audited_params(values: Iterable[Any]) -> list[str | None]:
    """Parameter values as an audit record keeps them: text, each and their number bounded."""
    items = list(values)
    out: list[str | None] = []
    for value in items[:MAX_PARAMS_AUDITED]:
        text = None if value is None else str(value)
        out.append(text if text is None or len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS] + "…")
    if len(items) > MAX_PARAMS_AUDITED:
        out.append(f"<{len(items) - MAX_PARAMS_AUDITED} more>")
    return out
