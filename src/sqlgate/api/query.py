"""Running one API query: the same chain as the wire proxies, on a pool instead of a relayed socket.

authenticate (the route's dependency) -> :meth:`QueryEngine.authorize` (policy
with approved grants; audited as ``policy.decision``) -> guardrails on the
parsed SQL -> broker lease -> the lease's pool -> the statement, with the
server-side ``statement_timeout`` -> masking -> JSON, or NDJSON chunks for a
stream. While it runs, the query is a live ``http`` session that an
administrator can end (its connection is terminated, which cancels it).
Every statement is audited like the proxy's (sql, params bounded, rows,
duration, sqlstate).

A MySQL/MariaDB database (engine ``mysql``) goes through the same steps with the
MySQL listener's statement checks and masking, on an asyncmy pool: :mod:`.mysql`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlgate.access.catalog import read_with_asyncpg
from sqlgate.access.masking import SessionMasking
from sqlgate.access.statements import HINT as GUARDRAIL_HINT
from sqlgate.access.statements import (
    bound_refusal,
    guardrail_verdict,
    has_bound_settings,
    statement_fields,
)
from sqlgate.api import metrics, mysql
from sqlgate.api.errors import QueryFailed, UnknownDatabase
from sqlgate.api.pools import LeasePools
from sqlgate.api.running import Authorized, Running, Statement
from sqlgate.api.values import Column, Converter, converters, row_to_json, text_like
from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import new_record, principal_record
from sqlgate.config import DatabaseConfig
from sqlgate.errors import AccessDenied, GuardrailViolation
from sqlgate.identity.principal import Principal
from sqlgate.policy.decide import Decision
from sqlgate.policy.sql import classify
from sqlgate.services import Services
from sqlgate.sessions import LiveSession

STREAM_CHUNK_ROWS = 2000


class QueryEngine:
    """Runs statements for the HTTP API and the MCP tools."""

    def __init__(self, services: Services, pools: LeasePools) -> None:
        self.services = services
        self.pools = pools
        self.hash_key = services.deployment_id.encode()
        self.decisions = services.access.decisions

    # -- policy ------------------------------------------------------------------

    def database(self, alias: str) -> DatabaseConfig:
        """The configured database ``alias`` (UnknownDatabase, 404, when there is none)."""
        config = self.services.settings.databases.get(alias)
        if config is None:
            known = ", ".join(sorted(self.services.settings.databases)) or "none"
            raise UnknownDatabase(f"database {alias!r} is not served by this gateway (databases here: {known})")
        return config

    async def decide(self, principal: Principal, database: str, role: str | None) -> Decision:
        """Policy's decision now, with the caller's approved grants (not audited: for listings)."""
        return await self.services.decide_with_grants(principal, database, role)

    async def authorize(
        self, principal: Principal, database: str, role: str | None, *, purpose: str = "query"
    ) -> Decision:
        """The allowing decision (audited, with ``purpose``), or ApprovalRequired / AccessDenied naming the rule."""
        self.database(database)
        try:
            return await self.decisions.authorize(principal, database, role, protocol="http", purpose=purpose)
        except AccessDenied:
            metrics.DENIALS.labels("policy").inc()
            raise

    async def prepare(self, principal: Principal, statement: Statement) -> Authorized:
        """Policy, guardrails and lease for ``statement``; raises the refusal the caller should see."""
        decision = await self.authorize(principal, statement.database, statement.role)
        config = self.database(statement.database)
        if config.engine == "mysql":
            verdict = mysql.verdict(decision, config, statement.database, statement.sql)
            refusal = verdict.refusal
        elif config.engine == "postgres":
            classification = classify(statement.sql)
            verdict = guardrail_verdict(decision.guardrails, classification, defer_bound=True)
            refusal = verdict.refusal
            if refusal is None and has_bound_settings(classification):
                refusal = bound_refusal(classification, [None if p is None else str(p) for p in statement.params])
        else:
            raise QueryFailed(
                f"database {statement.database!r} is a {config.engine} database; "
                "the query API serves PostgreSQL and MySQL/MariaDB",
                code="0A000",
                hint=f"use `sqlgate creds {statement.database}`",
            )
        if refusal is not None:
            raise self._refuse(principal, statement, decision, refusal)
        assert decision.role is not None
        assert decision.ttl is not None
        lease = await self.pools.lease(principal, statement.database, decision.role, decision.ttl)
        pool = await self.pools.get(lease)
        timeout = statement.timeout_ms or self.pools.default_timeout_ms
        return Authorized(principal, statement, decision, lease, pool, timeout, verdict.would_deny)

    def _refuse(self, principal: Principal, statement: Statement, decision: Decision, refusal: str) -> Exception:
        """The guardrail refusal the caller sees (403 naming the rule), audited as refused."""
        error = GuardrailViolation(refusal, hint=GUARDRAIL_HINT)
        error.rule = decision.matched_rules[0] if decision.matched_rules else None  # type: ignore[attr-defined]
        self.audit_statement(
            principal,
            statement,
            None,
            result="refused",
            rows=0,
            duration_ms=0.0,
            sqlstate=error.sqlstate,
            reason=error.message,
        )
        metrics.DENIALS.labels("guardrail").inc()
        return error

    # -- running -------------------------------------------------------------------

    async def run(self, job: Authorized) -> dict[str, Any]:
        """Run to completion: ``{columns, rows, row_count, truncated, duration_ms}``."""
        if self.database(job.statement.database).engine == "mysql":
            return await mysql.run(self, job)
        limit = job.statement.max_rows or self.services.settings.api.max_rows
        started = time.perf_counter()
        async with Running(self, job) as running:
            conn = running.connection
            try:
                if job.timeout_ms != self.pools.default_timeout_ms:
                    await conn.execute(f"SET statement_timeout = {int(job.timeout_ms)}")
                # asyncpg's statement cache (the public prepare() bypasses it): one round trip once warm.
                # No client-side timeout: the server's statement_timeout ends the statement (and costs nothing here).
                masking = await self._masking(job, conn, running)
                prepared = await conn._prepare(job.statement.sql, use_cache=True)  # noqa: SLF001
                columns = _columns(prepared)
                plan = self._plan(masking, columns)
                rows, status, _done = await conn._execute(  # noqa: SLF001 - a row limit at the protocol level
                    job.statement.sql, job.statement.params, limit + 1, None, return_status=True
                )
            except Exception as exc:
                raise running.failure(exc) from exc
            duration = (time.perf_counter() - started) * 1000
            truncated = len(rows) > limit
            body = [row_to_json(row, plan) for row in rows[:limit]]
            count = len(body) if columns else _status_count(status)
            running.done(rows=count, duration_ms=duration)
        return {
            "columns": [{"name": n, "type": t} for n, t in columns],
            "rows": body,
            "row_count": count,
            "truncated": truncated,
            "duration_ms": round(duration, 3),
        }

    async def _masking(self, job: Authorized, connection: Any, running: Running) -> tuple[SessionMasking, Any] | None:
        """The grant's masking for this statement and its outputs; refuses what masking cannot cover."""
        mask = job.decision.mask
        if not mask:
            return None
        sql, alias = job.statement.sql, job.statement.database
        service = self.services.access.masking
        session = await service.session(alias, mask, lambda: read_with_asyncpg(connection))
        analysis = session.engine.analyze(sql)
        if any(s.unknown_relations for s in analysis.statements) and service.catalogs.may_refresh(alias):
            session = await service.session(alias, mask, lambda: read_with_asyncpg(connection), refresh=True)
        reason, outputs = session.statements(sql)
        if reason is not None:
            raise running.refused(GuardrailViolation(f"refused while masking rules apply: {reason}"))
        return session, (outputs[0] if len(outputs) == 1 else None)

    @staticmethod
    def _plan(masking: tuple[SessionMasking, Any] | None, columns: list[Column]) -> list[Converter | None]:
        """How each column becomes JSON, masked per the grant's plan for this statement."""
        if masking is None:
            return converters(columns, {})
        session, outputs = masking
        return converters(columns, session.plan(outputs, [(name, text_like(kind)) for name, kind in columns]))

    async def stream(self, job: Authorized) -> AsyncIterator[bytes]:
        """NDJSON: a ``{"columns": ...}`` line, one JSON array per row, then ``{"row_count", "duration_ms"}``."""
        if self.database(job.statement.database).engine == "mysql":
            async for chunk in mysql.stream(self, job):
                yield chunk
            return
        from sqlgate.api.ndjson import dumps_line  # noqa: PLC0415 - tiny module, kept apart for the encoder

        started = time.perf_counter()
        count = 0
        async with Running(self, job) as running:
            conn = running.connection
            try:
                async with conn.transaction():
                    if job.timeout_ms != self.pools.default_timeout_ms:
                        await conn.execute(f"SET LOCAL statement_timeout = {int(job.timeout_ms)}")
                    masking = await self._masking(job, conn, running)
                    prepared = await conn.prepare(job.statement.sql)
                    columns = _columns(prepared)
                    plan = self._plan(masking, columns)
                    yield dumps_line({"columns": [{"name": n, "type": t} for n, t in columns]})
                    if columns:
                        cursor = await prepared.cursor(*job.statement.params)
                        while chunk := await cursor.fetch(STREAM_CHUNK_ROWS):
                            count += len(chunk)
                            yield b"".join(dumps_line(row_to_json(row, plan)) for row in chunk)
                    else:
                        status = await conn.execute(job.statement.sql, *job.statement.params)
                        count = _status_count(status)
            except Exception as exc:
                raise running.failure(exc) from exc
            duration = (time.perf_counter() - started) * 1000
            running.done(rows=count, duration_ms=duration)
        yield dumps_line({"row_count": count, "duration_ms": round(duration, 3)})

    # -- audit ---------------------------------------------------------------------

    def audit_statement(  # noqa: PLR0913 - one statement record's fields
        self,
        principal: Principal,
        statement: Statement,
        session: LiveSession | None,
        *,
        result: str,
        rows: int,
        duration_ms: float,
        sqlstate: str | None = None,
        reason: str | None = None,
        would_deny: str | None = None,
    ) -> None:
        """Audit one statement like the proxy does (sql, params bounded, rows, duration, sqlstate)."""
        outcome, reason, data = statement_fields(
            protocol=statement.protocol,
            sql=statement.sql,
            params=statement.params,
            result=result,
            rows=rows,
            duration_ms=duration_ms,
            sqlstate=sqlstate,
            error=reason,
            would_deny=would_deny,
            session=session,
        )
        self.services.audit.enqueue(
            new_record(  # a record dict, as the proxy hands them over: no model per statement
                "statement",
                format_time(datetime.now(UTC)),
                principal=principal_record(principal),
                source=principal.source,
                database=statement.database,
                db_login=session.db_login if session else None,
                session_id=session.id if session else None,
                outcome=outcome,
                reason=reason,
                data=data,
            )
        )


def _columns(prepared: Any) -> list[Column]:
    return [(attribute.name, attribute.type.name) for attribute in prepared.get_attributes()]


def _status_count(status: bytes | str | None) -> int:
    text = status.decode() if isinstance(status, bytes) else (status or "")
    last = text.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0
