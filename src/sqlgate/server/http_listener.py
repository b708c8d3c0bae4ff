"""The HTTP listener's sockets: HTTPS and plain HTTP on one port, told apart by each connection's first byte.

A TLS connection starts with a handshake record (byte 0x16); an HTTP request starts
with a method name. The listener peeks at that byte without reading it, then hands
the socket to the event loop as a TLS connection (with the gateway's certificate)
or a plain one; the HTTP protocol (uvicorn's) sees the scheme either way. Which plain
requests are then served is the loopback guard's decision (``api/transport.py``).
A client that sends nothing within ``FIRST_BYTE_TIMEOUT`` is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

log = logging.getLogger(__name__)

TLS_HANDSHAKE_RECORD = 0x16
FIRST_BYTE_TIMEOUT = 10.0
TLS_HANDSHAKE_TIMEOUT = 10.0
ACCEPT_RETRY_DELAY = 0.1  # after an accept error such as EMFILE, before accepting again

ProtocolFactory = Callable[[], asyncio.Protocol]


def bind_sockets(host: str, port: int, backlog: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets for ``host:port``, one per address it resolves to (as ``loop.create_server`` does).

    ``reuse_port``: SO_REUSEPORT, so the gateway's worker processes (``server.workers``) share the port.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)  # noqa: FBT003
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class DualListener:
    """Accepts on one listening socket; each connection becomes a TLS or a plain one for ``factory``."""

    def __init__(self, sock: socket.socket, factory: ProtocolFactory, tls_context: ssl.SSLContext) -> None:
        self._sock = sock
        self._factory = factory
        self._tls_context = tls_context
        self._accepting: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening socket (``asyncio.Server.sockets``' shape)."""
        return [self._sock]

    def start(self) -> None:
        """Start accepting connections."""
        self._accepting = asyncio.get_running_loop().create_task(self._accept_forever(), name="sqlgate-http-accept")

    def close(self) -> None:
        """Stop accepting; connections still being told apart are dropped; established ones are left to uvicorn."""
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._pending):
            task.cancel()
        self._sock.close()

    async def wait_closed(self) -> None:
        """Wait until the accept loop and every connection still being told apart have ended."""
        tasks = [task for task in (self._accepting, *self._pending) if task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _address = await loop.sock_accept(self._sock)
            except OSError as exc:
                log.warning("the HTTP listener could not accept a connection: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY_DELAY)
                continue
            task = loop.create_task(self._hand_over(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _hand_over(self, conn: socket.socket) -> None:
        try:
            async with asyncio.timeout(FIRST_BYTE_TIMEOUT):
                first = await peek_first_byte(conn)
        except (OSError, TimeoutError) as exc:
            log.info("an HTTP connection sent nothing: %s", exc or type(exc).__name__)
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        if not first:
            conn.close()
            return
        context = self._tls_context if first[0] == TLS_HANDSHAKE_RECORD else None
        try:  # from here on the socket is the event loop's: it closes it whatever happens
            await asyncio.get_running_loop().connect_accepted_socket(
                self._factory,
                conn,
                ssl=context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if context is not None else None,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.info("TLS handshake with an HTTP client failed: %s", exc or type(exc).__name__)


async def peek_first_byte(conn: socket.socket) -> bytes:
    """The connection's first byte, left unread (empty: the peer closed without sending)."""
    loop = asyncio.get_running_loop()
    conn.setblocking(False)  # noqa: FBT003
    while True:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            return conn.recv(1, socket.MSG_PEEK)
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _settle, readable)
        try:
            await readable
        finally:
            loop.remove_reader(conn.fileno())


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
