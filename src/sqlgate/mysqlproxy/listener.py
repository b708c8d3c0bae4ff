"""The MySQL/MariaDB wire listener: accepts clients on ``listen.mysql`` and knows each session by connection id.

The greeting carries the server version of the first MySQL database configured
(read once at start from its greeting, without logging in), so clients pick the
right SQL dialect; the connection id in it is the gateway's own, which ``KILL``
names (see :mod:`.cancel`). TLS uses the PostgreSQL listener's certificate
(:mod:`sqlgate.proxy.tls`), required unless the listener is on loopback or
``proxy.require_tls`` says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING

from sqlgate.cloudsql import CloudSqlDialers
from sqlgate.config import DatabaseConfig, is_loopback, split_host_port
from sqlgate.errors import ConfigError, SqlgateError
from sqlgate.mysqlproxy.cancel import kill_thread
from sqlgate.mysqlproxy.upstream import Upstream, kill_cloudsql_thread, server_greeting
from sqlgate.proxy.tls import server_context

if TYPE_CHECKING:
    from sqlgate.mysqlproxy.connection import MysqlClientConnection
    from sqlgate.services import Services

log = logging.getLogger(__name__)

DEFAULT_VERSION = "8.0.36-sqlgate"
PROBE_TIMEOUT = 3.0


class MysqlListener:
    """Serves the MySQL protocol on ``listen.mysql``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        if settings.listen.mysql is None:
            raise ConfigError("listen.mysql is not set")
        self.host, self.port = split_host_port(settings.listen.mysql)
        configured = settings.proxy.require_tls
        self.require_tls = configured if configured is not None else not is_loopback(self.host)
        self.tls_context: ssl.SSLContext | None = server_context(settings)
        self.server_version = DEFAULT_VERSION
        self._server: asyncio.Server | None = None
        self._connections: set[MysqlClientConnection] = set()
        self._by_id: dict[int, MysqlClientConnection] = {}
        self._next_id = 0
        self._background: set[asyncio.Future[bool]] = set()
        self.cloudsql = CloudSqlDialers()  # ephemeral certificates of cloudsql databases, per alias

    async def start(self) -> None:
        """Learn the server version, bind and start accepting clients."""
        await self._probe_version()
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
            "MySQL listener on %s:%s (TLS %s)", self.host, self.port, "required" if self.require_tls else "offered"
        )

    async def _probe_version(self) -> None:
        for config in self.services.settings.databases.values():
            if config.engine != "mysql":
                continue
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    greeting = await server_greeting(config.host, config.port)
            except (OSError, TimeoutError, SqlgateError) as exc:
                log.info("could not read the version of %s:%s: %s", config.host, config.port, exc)
                continue
            self.server_version = greeting.server_version
            return

    async def close(self) -> None:
        """Stop accepting and end every client connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connection in list(self._connections):
            connection.shut_down()
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.cloudsql.aclose()

    def _accept(self) -> MysqlClientConnection:
        from sqlgate.mysqlproxy.connection import MysqlClientConnection  # noqa: PLC0415 - the two refer to each other

        connection = MysqlClientConnection(self)
        self._connections.add(connection)
        return connection

    def next_connection_id(self) -> int:
        """A connection id for a new client (what its greeting says and KILL names)."""
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        return self._next_id

    def register(self, connection: MysqlClientConnection) -> None:
        """``connection`` is logged in: KILL may name it."""
        self._by_id[connection.connection_id] = connection

    def session_by_id(self, connection_id: int) -> MysqlClientConnection | None:
        """The logged-in session with this connection id."""
        return self._by_id.get(connection_id)

    def forget(self, connection: MysqlClientConnection) -> None:
        """``connection`` has ended."""
        self._connections.discard(connection)
        if self._by_id.get(connection.connection_id) is connection:
            del self._by_id[connection.connection_id]

    def forward_kill(self, config: DatabaseConfig, upstream: Upstream) -> None:
        """KILL QUERY of ``upstream``'s server thread in the background (Cloud SQL: as the thread's own user)."""
        if upstream.cloudsql is not None:
            task = asyncio.ensure_future(kill_cloudsql_thread(upstream.cloudsql, upstream.thread_id))
        else:
            task = asyncio.ensure_future(kill_thread(config, upstream.thread_id, query_only=True))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
