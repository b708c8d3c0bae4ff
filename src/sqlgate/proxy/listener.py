"""The PostgreSQL wire listener: accepts clients, owns the upstream pool and the cancel keys."""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from sqlgate.config import DatabaseConfig, is_loopback, split_host_port
from sqlgate.proxy.budget import SERVER_LIMITS_SQL, ServerLimits, budget_problems
from sqlgate.proxy.cloudsql import CloudSqlDialers, send_cloudsql_cancel
from sqlgate.proxy.connection import ClientConnection, new_backend_key
from sqlgate.proxy.tls import server_context
from sqlgate.proxy.upstream import UpstreamPool, send_cancel
from sqlgate.services import Services

log = logging.getLogger(__name__)


class PgListener:
    """Serves the PostgreSQL protocol on ``listen.postgres``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.host, self.port = split_host_port(settings.listen.postgres)
        configured = settings.proxy.require_tls
        self.require_tls = configured if configured is not None else not is_loopback(self.host)
        self.tls_context: ssl.SSLContext | None = server_context(settings)
        self.pool = UpstreamPool(
            max_idle=settings.proxy.upstream_max_idle,
            idle_seconds=settings.proxy.upstream_idle_timeout.total_seconds(),
        )
        self.cloudsql = CloudSqlDialers()  # ephemeral certificates of cloudsql databases, per alias
        self._cancel_keys: dict[int, list[tuple[bytes, ClientConnection]]] = {}
        self._server: asyncio.Server | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._connections: set[ClientConnection] = set()
        self.unknown_cancel: Callable[[int, bytes], Awaitable[None]] | None = None
        """Where a cancel request with a key this process does not know goes (the other workers), if anywhere."""

    async def start(self) -> None:
        """Bind and start accepting clients."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._accept,
            self.host,
            self.port,
            reuse_address=True,
            reuse_port=self.services.settings.server.workers > 1 or None,  # several processes, one port
            backlog=1024,
        )
        sockets = list(self._server.sockets or [])
        if sockets and self.port == 0:
            self.port = int(sockets[0].getsockname()[1])
        log.info(
            "PostgreSQL listener on %s:%s (TLS %s)", self.host, self.port, "required" if self.require_tls else "offered"
        )
        self.pool.own(self._check_budgets())  # the pool ends it with the gateway

    async def _check_budgets(self) -> None:
        """Warn at start when the idle cap, connection_limit and max_connections work against each other."""
        settings = self.services.settings
        for alias, db in settings.databases.items():
            if db.engine != "postgres":
                continue
            try:
                server = await _server_limits(db)
            except Exception as exc:  # only a warning is at stake; the database may be down
                log.info("could not read max_connections of %s: %s", alias, exc)
                server = None
            for problem in budget_problems(alias, db, settings.proxy, server):
                log.warning("connection budget: %s (`sqlgate doctor` checks it)", problem)

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already accepted go on (the drain on SIGTERM)."""
        if self._server is not None:
            self._server.close()

    @property
    def open_connections(self) -> int:
        """Client connections not yet ended."""
        return len(self._connections)

    async def close(self) -> None:
        """Stop accepting, end every client connection (57P01), close pooled upstream connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connection in list(self._connections):
            connection.shut_down()
        await self.pool.aclose()
        await self.cloudsql.aclose()

    def _accept(self) -> ClientConnection:
        connection = ClientConnection(self)
        self._connections.add(connection)
        return connection

    def forget(self, connection: ClientConnection) -> None:
        """``connection`` has ended."""
        self._connections.discard(connection)

    # -- used by connections -------------------------------------------------

    def register_cancel(self, connection: ClientConnection, short: bool, process_id: int) -> Any:
        """The backend key for ``connection``: its server process id, with a secret of the gateway's own.

        The client sees the real process id of its session's server connection (so
        ``pg_terminate_backend``, ``pg_stat_activity`` and NOTIFY pids match); the secret
        is new, so a CancelRequest still has to come through the gateway, which checks it.
        Process ids of different servers may coincide: each id keeps a list of keys.
        """
        key = new_backend_key(short, process_id)
        self._cancel_keys.setdefault(key.process_id, []).append((key.secret_key, connection))
        return key

    def unregister_cancel(self, connection: ClientConnection) -> None:
        """Forget ``connection``'s backend key."""
        if connection.backend_key is None:
            return
        process_id = connection.backend_key.process_id
        kept = [entry for entry in self._cancel_keys.get(process_id, []) if entry[1] is not connection]
        if kept:
            self._cancel_keys[process_id] = kept
        else:
            self._cancel_keys.pop(process_id, None)

    def forward_cancel(self, process_id: int, secret: bytes) -> None:
        """Forward a cancel request in the background (the connection that carried it closes at once)."""
        task = asyncio.ensure_future(self.cancel(process_id, secret))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cancel(self, process_id: int, secret: bytes, *, relayed: bool = False) -> None:
        """Forward a CancelRequest to the upstream backend behind ``process_id`` when the secret matches.

        An unknown key goes to :attr:`unknown_cancel` unless the request was ``relayed`` from there already.
        """
        found = [c for key, c in self._cancel_keys.get(process_id, []) if hmac.compare_digest(key, secret)]
        if not found:
            if self.unknown_cancel is not None and not relayed:
                await self.unknown_cancel(process_id, secret)
            else:
                log.info("ignored a cancel request with an unknown key")
            return
        upstream = found[0].upstream
        if upstream is not None and not await send_cloudsql_cancel(upstream):
            await send_cancel(upstream)


async def _server_limits(db: DatabaseConfig) -> ServerLimits:
    """The server's max_connections and reserved slots, read with the broker's admin login."""
    from sqlgate.broker.backends.postgres import PostgresBackend  # noqa: PLC0415 - asyncpg only when needed

    async with asyncio.timeout(10):
        conn = await PostgresBackend(db)._connect(db.dbname)  # noqa: SLF001 - the broker's own TLS and login
        try:
            row = await conn.fetchrow(SERVER_LIMITS_SQL)
        finally:
            await conn.close()
    return ServerLimits(int(row[0]), int(row[1]))
