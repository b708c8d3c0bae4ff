"""One statement while it runs: the caller's request, its grant, and the live session that holds a connection.

:class:`Running` takes a connection from the lease's pool and registers the query
as a live ``http`` session; an administrator ending it terminates the connection,
which cancels the statement. It also turns driver errors into the errors the
caller sees (400 with the database's SQLSTATE, 504 on timeout, 403 when the
session or lease was ended) and audits the outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from sqlgate.access.scrub import scrub_fields, scrub_text
from sqlgate.api import metrics
from sqlgate.api.errors import QueryFailed, QueryTimeout
from sqlgate.broker.lease import Lease
from sqlgate.errors import GuardrailViolation, LeaseEnded, UpstreamError
from sqlgate.identity.principal import Principal
from sqlgate.policy.decide import Decision
from sqlgate.sessions import LiveSession, new_session_id

if TYPE_CHECKING:
    from sqlgate.api.query import QueryEngine


@dataclass
class Statement:
    """One statement as the caller sent it."""

    database: str
    sql: str
    params: list[Any] = field(default_factory=list)
    role: str | None = None
    max_rows: int | None = None
    timeout_ms: int | None = None
    protocol: str = "http"


@dataclass
class Authorized:
    """A statement that passed policy and guardrails, with the lease and pool it runs on."""

    principal: Principal
    statement: Statement
    decision: Decision
    lease: Lease
    pool: Any
    timeout_ms: int
    would_deny: str | None = None  # guardrails in mode audit: why they would have refused it


class Running:
    """A pooled connection held by one query, registered as a live ``http`` session while it runs."""

    def __init__(self, engine: QueryEngine, job: Authorized) -> None:
        self.engine = engine
        self.job = job
        self.connection: Any = None
        self.ended_by: str | None = None
        self.started = time.perf_counter()
        lease = job.lease
        self.session = LiveSession(
            id=new_session_id(),
            kind="http",
            principal=job.principal,
            database=job.statement.database,
            role=lease.privilege,
            db_login=lease.db_login,
            source=job.principal.source,
            lease_id=lease.id,
            expires_at=lease.expires_at,
            statements=1,
        )
        self._finished = False

    async def __aenter__(self) -> Self:
        try:
            self.connection = await self.job.pool.acquire()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise UpstreamError(f"cannot reach {self.job.statement.database}: {exc}") from exc
        self.engine.services.sessions.add(self.session, self._end)
        metrics.SESSIONS.inc()
        return self

    async def __aexit__(self, _type: object, error: BaseException | None, _tb: object) -> None:
        self.engine.services.sessions.remove(self.session.id)
        metrics.SESSIONS.dec()
        connection, self.connection = self.connection, None
        if connection is not None:
            await self.job.pool.release(connection)
        if not self._finished and error is not None:
            self._record("error", 0, "57014", "the client went away before the statement finished")

    async def _end(self, reason: str) -> None:
        self.ended_by = reason
        if self.connection is None:
            return
        end = getattr(self.job.pool, "end", None)  # a MySQL pool kills the statement on the server too
        if end is not None:
            await end(self.connection)
        else:
            self.connection.terminate()

    def done(self, *, rows: int, duration_ms: float) -> None:
        """Audit the statement as run."""
        self._finished = True
        metrics.QUERY_SECONDS.observe(duration_ms / 1000)
        self._record("success", rows, None, None, duration_ms)

    def refused(self, error: GuardrailViolation) -> GuardrailViolation:
        """A refusal decided after the connection was taken (masking's), audited as refused."""
        self._finished = True
        metrics.DENIALS.labels("guardrail").inc()
        error.rule = self.job.decision.matched_rules[0] if self.job.decision.matched_rules else None  # type: ignore[attr-defined]
        self._record("refused", 0, error.sqlstate, error.message)
        return error

    def failure(self, exc: Exception) -> Exception:
        """The error the caller sees for ``exc`` (audited)."""
        if self._finished and isinstance(exc, GuardrailViolation):
            return exc  # refused (and audited) already
        error = self._translate(exc)
        self._finished = True
        code = getattr(error, "code", None) or getattr(error, "sqlstate", None)
        self._record("error", 0, code, str(error))
        return error

    def _translate(self, exc: Exception) -> Exception:  # noqa: PLR0911 - one return per kind of failure
        database = self.job.statement.database
        if self.ended_by is not None:
            return LeaseEnded(f"an administrator ended this query: {self.ended_by}")
        if isinstance(exc, asyncpg.QueryCanceledError | TimeoutError):
            return QueryTimeout(
                f"the statement ran longer than its timeout of {self.job.timeout_ms} ms",
                hint="send a larger timeout_ms, or narrow the query",
            )
        if isinstance(exc, GuardrailViolation):
            return exc
        if isinstance(exc, asyncpg.InternalClientError):  # a type the driver cannot decode (anyarray, pg_stats)
            return QueryFailed(
                "a result column has a type the HTTP API cannot decode",
                code="0A000",
                hint="cast that column to text in the SQL (e.g. most_common_vals::text)",
            )
        if isinstance(exc, asyncpg.PostgresError | asyncpg.DataError):
            return _query_failed(exc, scrub=bool(self.job.decision.mask))
        if self.engine.services.broker.ended(self.job.lease.id).is_set():
            return LeaseEnded(f"your database login for {database} ended while the query ran")
        if isinstance(exc, asyncpg.InterfaceError | OSError):
            return UpstreamError(f"the connection to {database} failed: {exc}")
        return exc

    def _record(self, result: str, rows: int, sqlstate: str | None, reason: str | None, duration: float = 0) -> None:
        elapsed = duration or (time.perf_counter() - self.started) * 1000
        self.engine.audit_statement(
            self.job.principal,
            self.job.statement,
            self.session,
            result=result,
            rows=rows,
            duration_ms=elapsed,
            sqlstate=sqlstate,
            reason=reason,
            would_deny=self.job.would_deny,
        )


def _query_failed(exc: Exception, *, scrub: bool) -> QueryFailed:
    """The caller's error for a database error; its texts scrubbed of values when the grant masks data."""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None)
        if scrub:
            fields = scrub_fields({"C": sqlstate or "", "M": str(exc), "H": getattr(exc, "hint", None) or ""})
            return QueryFailed(fields.get("M", ""), code=sqlstate, hint=fields.get("H") or None)
        return QueryFailed(str(exc), code=sqlstate)
    if scrub:
        return QueryFailed(scrub_text("22023", str(exc)), code="22023", hint=_PARAMS_HINT)
    return QueryFailed(str(exc), code="22023", hint=_PARAMS_HINT)


_PARAMS_HINT = "params bind as JSON values; cast text in SQL ($1::text)"
