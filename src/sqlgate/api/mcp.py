"""The MCP server at ``/mcp`` (streamable HTTP): the gateway's tools for AI agents.

Tools: ``list_databases``, ``describe`` (tables and columns the caller may see),
``query`` (the same policy, guardrails, masking and audit as ``POST /v1/query``,
on PostgreSQL and MySQL/MariaDB databases: read-only unless policy grants more), ``explain_access`` (why policy decides
as it does), ``request_access`` (ask people for a role that needs approval, with
a reason: the same :class:`~sqlgate.policy.requests.RequestService` as
``POST /v1/requests``, so it reaches the approvers' inbox and the webhooks) and
``my_requests`` (where the caller's requests stand). Once a request is approved,
the next ``query`` runs with the grant. The caller authenticates with the same bearer tokens as the API:
a request without a valid token is refused with 401 before it reaches the MCP
server, and every tool verifies the token of the request it serves (cached by
the authenticator), so a tool always acts as the identity that called it.

The server runs stateless with JSON responses: each request stands alone, so
any replica can answer it. Its session manager starts with the first request
and stops when the API closes (the gateway runs uvicorn without lifespan).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from sqlgate import __version__
from sqlgate.access.authenticate import bearer
from sqlgate.access.masking import MaskRules
from sqlgate.api.mysql import DESCRIBE_SQL as MYSQL_DESCRIBE_SQL
from sqlgate.api.problems import problem_response
from sqlgate.api.running import Statement
from sqlgate.api.state import ApiState
from sqlgate.config import is_loopback, parse_duration, split_host_port
from sqlgate.errors import AccessRequestError, SqlgateError
from sqlgate.identity.principal import Principal
from sqlgate.policy.explain import explain
from sqlgate.policy.sql.lineage import Column as LineageColumn
from sqlgate.policy.tables import REQUEST_STATES

PATH = "/mcp"
MAX_ROWS = 500
DESCRIBE_SQL = (
    "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
    "ORDER BY table_schema, table_name, ordinal_position"
)
INSTRUCTIONS = (
    "sqlgate runs SQL on databases as the calling identity. Call list_databases first, then describe a "
    "database, then query it. Statements are read-only unless policy grants more; some columns are masked. "
    "When access is refused, explain_access says which rule decided and why. When a role needs approval, "
    "call request_access with the database, role, a duration and your reason; a person approves or denies "
    "it; my_requests shows where it stands, and once it is approved, query again (with that role)."
)


async def _principal(api: ApiState, ctx: Context) -> Principal:
    headers = ctx.headers or {}
    request = ctx.request_context.request
    client = getattr(request, "client", None)
    try:
        token = bearer(headers.get("authorization", ""))
        return await api.services.access.authenticate(token, client.host if client else None, protocol="mcp")
    except SqlgateError as exc:
        raise ToolError(f"401: {exc}") from None


def _tool_error(exc: SqlgateError) -> ToolError:
    rule = getattr(exc, "rule", None)
    return ToolError(f"{exc.http_status}: {exc}" + (f" (rule {rule})" if rule else ""))


def build_server(api: ApiState) -> MCPServer[Any]:
    """The MCP server with sqlgate's tools, acting for ``api``."""
    server: MCPServer[Any] = MCPServer(name="sqlgate", version=__version__, instructions=INSTRUCTIONS)

    @server.tool()
    async def list_databases(ctx: Context) -> dict[str, Any]:
        """The databases you may query now (or after an approval), with role and time limit."""
        from sqlgate.api.routes.access import reachable_databases  # noqa: PLC0415 - routes import this module's peers

        principal = await _principal(api, ctx)
        found = await reachable_databases(api, principal, None)
        return {"databases": [entry.model_dump(exclude={"connect"}) for entry in found]}

    @server.tool()
    async def describe(database: str, ctx: Context) -> dict[str, Any]:
        """Tables and columns you may see on `database` (masked columns are marked)."""
        principal = await _principal(api, ctx)
        try:
            is_mysql = api.engine.database(database).engine == "mysql"
            sql = MYSQL_DESCRIBE_SQL if is_mysql else DESCRIBE_SQL
            job = await api.engine.prepare(principal, Statement(database, sql, protocol="mcp"))
            result = await api.engine.run(job)
        except SqlgateError as exc:
            raise _tool_error(exc) from None
        rules = MaskRules(job.decision.mask, hash_key=api.engine.hash_key) if job.decision.mask else None
        tables: dict[str, list[dict[str, Any]]] = {}
        for schema, table, column, data_type in result["rows"]:
            # MySQL masking names relations and columns in lower case, as the server compares them
            source = LineageColumn(f"{schema}.{table}".lower(), column.lower()) if is_mysql else None
            masked = bool(rules and rules.function(source or LineageColumn(f"{schema}.{table}", column)))
            tables.setdefault(f"{schema}.{table}", []).append({"name": column, "type": data_type, "masked": masked})
        return {
            "database": database,
            "role": job.decision.role,
            "tables": [{"name": name, "columns": columns} for name, columns in tables.items()],
        }

    @server.tool()
    async def query(  # noqa: PLR0913, PLR0917 - the tool's arguments
        database: str,
        sql: str,
        ctx: Context,
        params: list[Any] | None = None,
        max_rows: int = 100,
        role: str | None = None,
    ) -> dict[str, Any]:
        """Run one SQL statement on `database` as you (read-only unless policy grants more; masked results).

        `role` picks a privilege level (e.g. `write` after an approved request); the best granted one when absent.
        """
        principal = await _principal(api, ctx)
        rows = max(1, min(max_rows, MAX_ROWS))
        try:
            job = await api.engine.prepare(
                principal, Statement(database, sql, list(params or []), role=role, max_rows=rows, protocol="mcp")
            )
            return await api.engine.run(job)
        except SqlgateError as exc:
            raise _tool_error(exc) from None

    @server.tool()
    async def explain_access(database: str, ctx: Context, role: str | None = None) -> dict[str, Any]:
        """Why policy allows, denies or needs approval for you on `database`: every rule and what it said."""
        principal = await _principal(api, ctx)
        try:
            api.engine.database(database)
        except SqlgateError as exc:
            raise _tool_error(exc) from None
        grants = await api.services.grants.get(principal, database)
        explanation = explain(
            api.services.policy.policy, principal, database, role, datetime.now(UTC), principal.source, grants=grants
        )
        return explanation.to_dict()

    _request_tools(server, api)
    return server


def _request_tools(server: MCPServer[Any], api: ApiState) -> None:
    """Add ``request_access`` and ``my_requests``: access requests through the same service as the API."""

    @server.tool()
    async def request_access(
        database: str, role: str, reason: str, ctx: Context, duration: str | None = None
    ) -> dict[str, Any]:
        """Ask people for `role` on `database` (a role policy grants only after approval), saying why.

        `duration` such as `30m` or `2h` (at most what the rule allows; its limit when absent). The request
        waits for approvers; call my_requests to see it, and query again once it is approved.
        """
        principal = await _principal(api, ctx)
        try:
            api.engine.database(database)
            wanted = _duration(duration)
            created = await api.requests.create(principal, database, role, wanted, reason)
            await api.services.audit.flush()  # the step's audit record is durable before we answer
        except SqlgateError as exc:
            raise _tool_error(exc) from None
        return {
            **created.to_dict(),
            "next": "wait for an approver; call my_requests to see where it stands, then query again",
        }

    @server.tool()
    async def my_requests(ctx: Context, status: str | None = None) -> dict[str, Any]:
        """Your access requests, newest first (`status`: pending, approved, denied or expired)."""
        principal = await _principal(api, ctx)
        if status is not None and status not in REQUEST_STATES:
            raise ToolError(f"400: status must be one of {', '.join(REQUEST_STATES)}")
        found = await api.requests.list(principal_key=principal.key, status=status, limit=100)
        return {"requests": [request.to_dict() for request in found]}


def _duration(text: str | None) -> timedelta | None:
    if text is None or not text.strip():
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise AccessRequestError(f"duration: {exc}") from None


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: refuses requests without a valid token, then hands them to the MCP server."""

    def __init__(self, api: ApiState) -> None:
        self.api = api
        self.server = build_server(api)
        host, _port = split_host_port(api.services.settings.listen.http)
        security = None if is_loopback(host) else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.app: ASGIApp = self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            transport_security=security,
            host=host,
        )
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stop = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one MCP request."""
        client = scope.get("client")
        try:
            token = bearer(_header(scope, b"authorization"))
            await self.api.services.access.authenticate(token, client[0] if client else None, protocol="mcp")
        except SqlgateError as exc:
            response = problem_response(exc.http_status, str(exc), kind="unauthorized", sqlstate=exc.sqlstate)
            await response(scope, receive, send)
            return
        await self._ensure_running()
        await self.app(scope, receive, send)

    async def _ensure_running(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sqlgate-mcp")
        await self._started.wait()

    async def _run(self) -> None:
        async with self.server.session_manager.run():
            self._started.set()
            await self._stop.wait()

    async def close(self) -> None:
        """Stop the MCP session manager (if it started)."""
        self._stop.set()
        if self._task is not None:
            await self._task


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""
