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

from sqlgate.audit.events import Outcome
from sqlgate.audit.rows import statement_data
from sqlgate.metrics import GUARDRAIL_REFUSALS, STATEMENT_SECONDS
from sqlgate.policy.model import Guardrails
from sqlgate.policy.sql import Classification, PreparedRegistry, check, check_bound
from sqlgate.sessions import LiveSession
from sqlgate.tracing import record_statement

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
        GUARDRAIL_REFUSALS.labels(violation.kind, "false").inc()
        return Verdict(would_deny=message)
    GUARDRAIL_REFUSALS.labels(violation.kind, "true").inc()
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


def statement_fields(  # noqa: PLR0913 - one statement record's fields, named
    *,
    protocol: str,
    sql: str,
    params: Any,
    result: str,
    rows: int | None,
    duration_ms: float,
    sqlstate: str | None = None,
    error: str | None = None,
    would_deny: str | None = None,
    tags: list[str] | None = None,
    params_bounded: bool = False,
    session: LiveSession | None = None,
) -> tuple[Outcome, str | None, dict[str, object]]:
    """A statement record's outcome, reason and data, the same on every path.

    ``sql`` and ``params`` are bounded here (:func:`audited_sql`, :func:`audited_params`),
    unless ``params_bounded`` says the caller did (the relay bounds Bind's bytes itself).
    ``session`` (the statement's, when the caller has it) labels the statement's trace span.
    A statement audit-mode guardrails would have refused, and that ran, has outcome
    ``would_deny`` with that reason; its own error, if any, is kept as ``data.error``.
    """
    outcome, reason, data = statement_data(
        protocol=protocol,
        sql=audited_sql(sql),
        params=params if params is None or params_bounded else audited_params(params),
        result=result,
        rows=rows,
        duration_ms=duration_ms,
        sqlstate=sqlstate,
        error=error,
        would_deny=would_deny,
        tags=tags,
    )
    observe_statement(protocol, outcome, duration_ms, sqlstate, session)
    return outcome, reason, data


_statement_seconds: dict[tuple[str, str], Any] = {}  # the histogram's child per label pair, looked up once


def observe_statement(
    protocol: str, outcome: str, duration_ms: float, sqlstate: str | None, session: LiveSession | None
) -> None:
    """Count a statement in the metrics and the trace (its audit record is the caller's)."""
    histogram = _statement_seconds.get((protocol, outcome))
    if histogram is None:
        histogram = _statement_seconds[protocol, outcome] = STATEMENT_SECONDS.labels(protocol, outcome)
    histogram.observe(duration_ms / 1000)
    record_statement(protocol, outcome, duration_ms, sqlstate, session)
