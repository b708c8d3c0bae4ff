"""Statement records in compact form: what the relay's event loop captures per statement, and what it becomes.

A wire session's fixed fields (principal, source, database, login, session id)
are handed to the log once, as a *context* (:meth:`open_context` of either log);
each statement is then a flat tuple, a :data:`StatementRow`: the context's key,
the time as a number, and the statement's own values. No record dict, no time
formatting, no event id and no redaction happen on the loop; the log expands a
row into the same record every other path writes (:func:`expand`), in the
gateway's process (``audit.writer: inline``) or in the writer process, where
the row crosses the pipe as a small tuple instead of a whole record.

:func:`statement_data` is the one place that decides a statement record's
outcome, reason and ``data``, for rows and for the HTTP and MCP paths alike.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

from sqlgate.audit.canonical import format_unix_time
from sqlgate.audit.chain import new_record
from sqlgate.audit.events import Outcome

Record = dict[str, Any]
StatementRow = tuple[Any, ...]
"""``(context, unix_time, protocol, sql, params, rows, sqlstate, duration_ms, result, error, would_deny, tags)``"""

CONTEXT_FIELDS = ("principal", "source", "database", "db_login", "session_id")
"""The record fields a context holds (each may be None)."""

RESULT_OUTCOMES: dict[str, Outcome] = {
    "success": "success",
    "error": "error",
    "refused": "denied",
    "skipped": "info",
    "suspended": "success",
    "client_gone": "client_gone",
    "interrupted": "error",
}

_context_keys = itertools.count(1)


def new_context_key() -> int:
    """A key for a context, unique in this process."""
    return next(_context_keys)


def statement_outcome(result: str, would_deny: str | None) -> Outcome:
    """The record's outcome: the result's, or ``would_deny`` for a statement audit-mode guardrails let run."""
    if would_deny is not None and result != "refused":
        return "would_deny"
    return RESULT_OUTCOMES.get(result, "info")


def statement_data(  # noqa: PLR0913 - one statement record's fields, named
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
) -> tuple[Outcome, str | None, dict[str, object]]:
    """A statement record's outcome, reason and data (``sql`` and ``params`` already bounded by the caller).

    A statement audit-mode guardrails would have refused, and that ran, has outcome
    ``would_deny`` with that reason; its own error, if any, is kept as ``data.error``.
    """
    data: dict[str, object] = {
        "protocol": protocol,
        "sql": sql,
        "params": params,
        "rows": rows,
        "sqlstate": sqlstate,
        "duration_ms": round(duration_ms, 3),
        "result": result,
    }
    if tags is not None:
        data["tags"] = tags
    outcome = statement_outcome(result, would_deny)
    if outcome != "would_deny":
        return outcome, error, data
    data["error"] = error
    return outcome, would_deny, data


def statement_row(  # noqa: PLR0913 - the row's fields, named
    context: int,
    *,
    protocol: str,
    sql: str,
    params: Sequence[Any] | None,
    result: str,
    rows: int | None,
    duration_ms: float,
    sqlstate: str | None,
    error: str | None,
    would_deny: str | None,
    tags: list[str] | None,
) -> StatementRow:
    """A statement as a row, stamped now (``sql`` and ``params`` already bounded; ``params`` kept as a list)."""
    return (
        context,
        time.time(),
        protocol,
        sql,
        None if params is None else list(params),
        rows,
        sqlstate,
        duration_ms,
        result,
        error,
        would_deny,
        tags,
    )


def expand(context: Record | None, row: StatementRow) -> Record:
    """The statement record of ``row`` in ``context`` (the session's fields; None: a row whose context is gone)."""
    _key, moment, protocol, sql, params, rows, sqlstate, duration_ms, result, error, would_deny, tags = row
    outcome, reason, data = statement_data(
        protocol=protocol,
        sql=sql,
        params=params,
        result=result,
        rows=rows,
        duration_ms=duration_ms,
        sqlstate=sqlstate,
        error=error,
        would_deny=would_deny,
        tags=tags,
    )
    return new_record(
        "statement",
        format_unix_time(moment),
        **(context or {}),
        outcome=outcome,
        reason=reason,
        data=data,
    )


def session_context(
    principal: Record | None, source: str | None, database: str | None, db_login: str | None, session_id: str | None
) -> Record:
    """A context's fields, as :data:`CONTEXT_FIELDS` names them."""
    return dict(zip(CONTEXT_FIELDS, (principal, source, database, db_login, session_id), strict=True))
