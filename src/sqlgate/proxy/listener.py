"""The PostgreSQL wire listener: accepts clients, owns the upstream pool and the cancel keys."""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from typing import Any

from sqlgate.config import is_loopback, split_host_port
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
        self.pool = UpstreamPool()
        self._cancel_keys: dict[int, tuple[bytes, ClientConnection]] = {}
        self._server: asyncio.Server | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._connections: set[ClientConnection] = set()

    async def start(self) -> None:
        """Bind and start accepting clients."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, self.host, self.port, reuse_address=True, backlog=1024)
        sockets = list(self._server.sockets or [])
        if sockets and self.port == 0:
            self.port = int(sockets[0].getsockname()[1])
        log.info(
            "PostgreSQL listener on %s:%s (TLS %s)", self.host, self.port, "required" if self.require_tls else "offered"
        )

    async def close(self) -> None:
        """Stop accepting, end every client connection (57P01), close pooled upstream connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connection in list(self._connections):
            connection.shut_down()
        await self.pool.aclose()

    def _accept(self) -> ClientConnection:
        connection = ClientConnection(self)
        self._connections.add(connection)
        return connection

    def forget(self, connection: ClientConnection) -> None:
        """``connection`` has ended."""
        self._connections.discard(connection)

    # -- used by connections -------------------------------------------------

    def register_cancel(self, connection: ClientConnection, short: bool) -> Any:
        """A fresh backend key for ``connection``; a CancelRequest with it reaches its upstream."""
        while True:
            key = new_backend_key(short)
            if key.process_id not in self._cancel_keys:
                self._cancel_keys[key.process_id] = (key.secret_key, connection)
                return key

    def unregister_cancel(self, connection: ClientConnection) -> None:
        """Forget ``connection``'s backend key."""
        if connection.backend_key is not None:
            entry = self._cancel_keys.get(connection.backend_key.process_id)
            if entry is not None and entry[1] is connection:
                del self._cancel_keys[connection.backend_key.process_id]

    def forward_cancel(self, process_id: int, secret: bytes) -> None:
        """Forward a cancel request in the background (the connection that carried it closes at once)."""
        task = asyncio.ensure_future(self.cancel(process_id, secret))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cancel(self, process_id: int, secret: bytes) -> None:
        """Forward a CancelRequest to the upstream backend behind ``process_id`` when the secret matches."""
        entry = self._cancel_keys.get(process_id)
        if entry is None or not hmac.compare_digest(entry[0], secret):
            log.info("ignored a cancel request with an unknown key")
            return
        upstream = entry[1].upstream
        if upstream is not None:
            await send_cancel(upstream)
