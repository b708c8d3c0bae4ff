"""What one wire session writes into the audit log: its events, and each statement as a row.

Both listeners (PostgreSQL and MySQL) record a session the same way through a
:class:`SessionRecorder`: session events as record dicts (no event model per
event), and once the session has started, each statement as a compact row
(:mod:`sqlgate.audit.rows`) in the session's context, which the log expands into
the statement record off the relay's hot path. When the audit queue is full
(``on_full: block``) the recorder stops reading from the client until the log
takes the statement: backpressure, never an unaudited statement.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlgate.access.statements import audited_params, audited_sql, observe_statement
from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import new_record, principal_record
from sqlgate.audit.events import EventType, Outcome
from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import AuditProcess
from sqlgate.audit.rows import StatementRow, expand, session_context, statement_outcome, statement_row
from sqlgate.errors import AuditQueueFull
from sqlgate.sessions import LiveSession

Record = dict[str, Any]


class SessionRecorder:
    """The audit side of one client connection."""

    def __init__(
        self,
        audit: AuditLog | AuditProcess,
        source: str | None,
        *,
        pause_reading: Callable[[], None],
        resume_reading: Callable[[], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self.audit = audit
        self.source = source
        self._pause_reading = pause_reading
        self._resume_reading = resume_reading
        self._spawn = spawn
        self._session: LiveSession | None = None
        self._principal: Record | None = None
        self._context: int | None = None
        self._waiting = 0  # statements waiting for room in the audit queue
        self._ended = False

    def started(self, session: LiveSession) -> None:
        """The session is logged in: its statements are recorded in its context from now on."""
        self._session = session
        self._principal = principal_record(session.principal)
        self._context = self.audit.open_context(self._fields())

    def ended(self) -> None:
        """The session is over: its context closes after its rows are handed over (some may wait for room)."""
        self._ended = True
        if self._context is not None and not self._waiting:
            self.audit.close_context(self._context)
            self._context = None

    def event(self, kind: EventType, outcome: Outcome, *, reason: str | None = None, data: dict[str, object]) -> Record:
        """A session event as a record dict, with the session's fields once it has started."""
        return new_record(
            kind, format_time(datetime.now(UTC)), **self._fields(), outcome=outcome, reason=reason, data=data
        )

    def statement(  # noqa: PLR0913 - one statement's fields, named
        self,
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
        tags: list[str] | None = None,
        params_bounded: bool = False,
    ) -> None:
        """Count a statement and hand its record over (``params_bounded``: the relay bounded them already)."""
        session = self._session
        if session is not None:
            session.statements += 1
        observe_statement(protocol, statement_outcome(result, would_deny), duration_ms, sqlstate, session)
        if params is not None and not params_bounded:
            params = audited_params(params)
        row = statement_row(
            self._context or 0,
            protocol=protocol,
            sql=audited_sql(sql),
            params=params,
            result=result,
            rows=rows,
            duration_ms=duration_ms,
            sqlstate=sqlstate,
            error=error,
            would_deny=would_deny,
            tags=tags,
        )
        try:
            self._hand_over(row)
        except AuditQueueFull:
            self._pause_reading()
            self._waiting += 1
            self._spawn(self._submit(row))

    def _hand_over(self, row: StatementRow) -> None:
        if self._context is not None:
            self.audit.enqueue_statement(row)
        else:  # no context (not logged in, or already ended): the whole record
            self.audit.enqueue(expand(self._fields(), row))

    async def _submit(self, row: StatementRow) -> None:
        """Wait for room in the queue, hand the row over, read from the client again."""
        try:
            if self._context is not None:
                await self.audit.submit_statement(row)
            else:
                await self.audit.submit(expand(self._fields(), row))
        finally:
            self._waiting -= 1
            if self._ended and not self._waiting:
                self.ended()
        self._resume_reading()

    def _fields(self) -> Record:
        session = self._session
        if session is None:
            return session_context(self._principal, self.source, None, None, None)
        return session_context(self._principal, self.source, session.database, session.db_login, session.id)
