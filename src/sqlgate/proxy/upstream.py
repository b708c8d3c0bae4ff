"""Connections from the gateway to the target server: login, reset, and a pool per lease.

A connection logs in with the lease's credential over SCRAM (TLS first where the
server offers it, as ``tls`` in the database settings says), then hands its byte
stream to a session's relay. When the client leaves, a clean connection (idle,
not in a transaction) is reset with ``DISCARD ALL`` and kept for the next session
of the same lease, so reconnecting clients do not pay a login each time. When
the lease ends, its pooled connections are closed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlgate.config import DatabaseConfig
from sqlgate.errors import ProtocolError, SqlgateError, UpstreamError
from sqlgate.pgwire import BackendKeyData, UpstreamHandshake, UpstreamLogin
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Query
from sqlgate.pgwire.startup import CancelRequest
from sqlgate.pgwire.upstream_handshake import SSL_REQUEST, UpstreamRefused, server_accepts_tls

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
RESET_TIMEOUT = 5.0
POOL_IDLE_SECONDS = 60.0
POOL_MAX_IDLE_PER_LEASE = 8
_RESET = Query("DISCARD ALL").encode()

DataSink = Callable[[bytes], None]


class PausePeer(Protocol):
    """Pause or resume reading from the other side of the relay."""

    def __call__(self, *, paused: bool) -> None:
        """Pause (True) or resume (False)."""


class UpstreamProtocol(asyncio.Protocol):
    """One connection to the server; bytes go to the login, then to whoever :meth:`attach` names."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[bytes] | None = None
        self._buffer = bytearray()
        self._sink: DataSink | None = None
        self._on_lost: Callable[[], None] | None = None
        self._pause_peer: PausePeer | None = None
        self.closed = False

    # -- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Connected to the server."""
        self.transport = cast("asyncio.Transport", transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        """Bytes from the server: to the relay when attached, else buffered for the login."""
        if self._sink is not None:
            self._sink(data)
            return
        self._buffer += data
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        """The server's socket closed."""
        del exc
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(UpstreamError("the database server closed the connection"))
        if self._on_lost is not None:
            self._on_lost()

    def pause_writing(self) -> None:
        """The server reads slower than the client sends: stop reading from the client."""
        if self._pause_peer is not None:
            self._pause_peer(paused=True)

    def resume_writing(self) -> None:
        """The server caught up: read from the client again."""
        if self._pause_peer is not None:
            self._pause_peer(paused=False)

    # -- login phase ---------------------------------------------------------

    async def read(self) -> bytes:
        """Bytes received since the last read (waits for some); only before :meth:`attach`; callers set a timeout."""
        while not self._buffer:
            if self.closed:
                raise UpstreamError("the database server closed the connection")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def write(self, data: bytes) -> None:
        """Send bytes to the server."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    # -- relay phase ---------------------------------------------------------

    def attach(self, sink: DataSink, on_lost: Callable[[], None], pause_peer: PausePeer) -> None:
        """Send every byte from now on to ``sink``; ``on_lost`` when the server hangs up."""
        self._sink, self._on_lost, self._pause_peer = sink, on_lost, pause_peer
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            sink(data)

    def detach(self) -> None:
        """Stop relaying (the connection goes back to the pool or is closed)."""
        self._sink = self._on_lost = self._pause_peer = None

    def pause_reading(self, *, paused: bool) -> None:
        """Backpressure from the client side."""
        if self.transport is None or self.closed:
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self.transport is not None and not self.closed:
            self.transport.close()


@dataclass(eq=False)  # a connection is itself, not its fields: hashed and compared by identity
class Upstream:
    """A logged-in server connection and what the login told us."""

    protocol: UpstreamProtocol
    parameters: dict[str, str]
    backend_key: BackendKeyData
    lease_id: str
    params_key: tuple[tuple[str, str], ...]
    host: str
    port: int
    transaction_status: str = "I"
    idle_since: float = 0.0

    @property
    def healthy(self) -> bool:
        """Connected and not inside a transaction."""
        return not self.protocol.closed and self.transaction_status == "I"


class UpstreamFull(UpstreamError):
    """The server refused a login for too many connections (its SQLSTATE 53300), with the setting to raise."""

    sqlstate = "53300"
    http_status = 503


async def connect_upstream(
    config: DatabaseConfig,
    login: UpstreamLogin,
    lease_id: str,
    params_key: tuple[tuple[str, str], ...],
    *,
    alias: str = "<alias>",
) -> Upstream:
    """Open a connection to ``config``'s server and log in as ``login``.

    A connection that does not finish logging in is closed, whatever stopped it: an
    error, the timeout, or the caller being cancelled (the client left, the gateway stops).
    ``alias`` names the database in the settings (for the setting a 53300 refusal names).
    """
    loop = asyncio.get_running_loop()
    protocol: UpstreamProtocol | None = None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            transport, protocol = await loop.create_connection(UpstreamProtocol, config.host, config.port)
            certificate: bytes | None = None
            if config.tls != "disable":
                transport, certificate = await _negotiate_tls(loop, transport, protocol, config)
            handshake = UpstreamHandshake(_with_certificate(login, certificate))
            protocol.write(handshake.start())
            while not handshake.done:
                for reply in handshake.receive(await protocol.read()):
                    protocol.write(reply.data)
    except BaseException as exc:
        if protocol is not None:
            protocol.close()
        error = _connect_error(exc, config, alias)
        if error is None:
            raise
        raise error from exc
    if handshake.backend_key is None:
        protocol.close()
        raise ProtocolError("the database server sent no BackendKeyData")
    return Upstream(
        protocol,
        dict(handshake.parameters),
        handshake.backend_key,
        lease_id,
        params_key,
        config.host,
        config.port,
        handshake.transaction_status or "I",
    )


def _with_certificate(login: UpstreamLogin, certificate: bytes | None) -> UpstreamLogin:
    if certificate is None:
        return login
    return UpstreamLogin(
        login.user, login.database, login.password, login.parameters, login.protocol, certificate, login.methods
    )


def _connect_error(exc: BaseException, config: DatabaseConfig, alias: str) -> UpstreamError | None:
    """What a failed connection attempt tells the user; None: raise ``exc`` itself (ours, or cancellation)."""
    where = f"{config.host}:{config.port}"
    if isinstance(exc, UpstreamRefused) and exc.server_sqlstate == "53300":
        return _too_many(exc.error.message, config, alias)
    if isinstance(exc, TimeoutError):
        return UpstreamError(f"timed out connecting to the database at {where}")
    if isinstance(exc, ssl.SSLError):  # before OSError, which it is a kind of
        return UpstreamError(f"TLS to the database at {where} failed: {exc.reason or exc}")
    if isinstance(exc, OSError):
        return UpstreamError(f"cannot reach the database at {where}: {exc.strerror or exc}")
    return None


def _too_many(message: str, config: DatabaseConfig, alias: str) -> UpstreamFull:
    """53300 with the setting to raise: the login's CONNECTION LIMIT, or the server's max_connections."""
    if "for role" in message:  # "too many connections for role ...": the minted login's own limit
        return UpstreamFull(
            f"the database refused another connection for your login: {message}",
            hint=f"raise databases.{alias}.connection_limit (now {config.connection_limit}) in the gateway's "
            "settings, or close some of your sessions (idle server connections close after "
            "proxy.upstream_idle_timeout)",
        )
    return UpstreamFull(
        f"the database at {config.host}:{config.port} has no connection slot left: {message}",
        hint="raise max_connections on the PostgreSQL server, or lower proxy.upstream_max_idle or "
        f"databases.{alias}.connection_limit (`sqlgate doctor` checks them together)",
    )


async def _negotiate_tls(
    loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, protocol: UpstreamProtocol, config: DatabaseConfig
) -> tuple[asyncio.Transport, bytes | None]:
    protocol.write(SSL_REQUEST)
    answer = await protocol.read()
    if len(answer) != 1:
        raise ProtocolError("the database server answered SSLRequest with more than one byte")
    if not server_accepts_tls(answer):
        if config.tls in ("require", "verify-full"):
            raise UpstreamError(f"the database at {config.host}:{config.port} does not offer TLS (tls: {config.tls})")
        return transport, None
    context = _client_context(config)
    server_hostname = config.host if config.tls == "verify-full" else None
    new_transport = await loop.start_tls(transport, protocol, context, server_hostname=server_hostname)
    if new_transport is None:
        raise UpstreamError("TLS to the database could not be started")
    protocol.transport = new_transport
    ssl_object = new_transport.get_extra_info("ssl_object")
    certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return new_transport, certificate


def _client_context(config: DatabaseConfig) -> ssl.SSLContext:
    if config.tls == "verify-full":
        context = ssl.create_default_context(cafile=str(config.tls_ca_file) if config.tls_ca_file else None)
    else:
        # prefer/require: encrypted, not authenticated (libpq's meaning of these modes).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def send_cancel(upstream: Upstream) -> None:
    """Ask the server to cancel what ``upstream`` is running (a new connection, as libpq does)."""
    key = upstream.backend_key
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
            writer.write(CancelRequest(key.process_id, key.secret_key).encode())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        log.warning("could not forward a cancel request to %s:%s: %s", upstream.host, upstream.port, exc)


class UpstreamPool:
    """Idle, reset connections per (lease, startup parameters), with hard bounds.

    The pool owns a connection from the moment it is handed back: while it is being
    reset (:meth:`give_back`, or in the background with :meth:`give_back_soon`) and
    while it is idle. Closing a lease or the pool closes both kinds, so a connection
    reset at that moment is never kept for a lease that has ended, and nothing is
    left running when the gateway stops (:meth:`aclose`).

    Bounds: a connection handed back takes its place under ``max_idle`` at once (being
    reset counts as idle), so sessions ending together never overfill a lease's share;
    an idle connection is closed ``idle_seconds`` after it was handed back; and when a
    lease's last session ends (:meth:`session_ended`) and none starts within
    ``idle_seconds``, every idle connection of that lease is closed.
    """

    def __init__(self, *, max_idle: int = POOL_MAX_IDLE_PER_LEASE, idle_seconds: float = POOL_IDLE_SECONDS) -> None:
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._idle: dict[tuple[str, tuple[tuple[str, str], ...]], list[Upstream]] = {}
        self._resetting: set[Upstream] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self._sessions: dict[str, int] = {}  # lease -> sessions open
        self._lease_timers: dict[str, asyncio.TimerHandle] = {}
        self._closed = False

    def take(self, lease_id: str, params_key: tuple[tuple[str, str], ...]) -> Upstream | None:
        """A pooled connection for this lease and parameters, if a healthy one is idle."""
        idle = self._idle.get((lease_id, params_key))
        while idle:
            upstream = idle.pop()
            if upstream.healthy and time.monotonic() - upstream.idle_since < self.idle_seconds:
                return upstream
            upstream.protocol.close()
        return None

    def session_started(self, lease_id: str) -> None:
        """A session of ``lease_id`` began: its idle connections are kept."""
        self._sessions[lease_id] = self._sessions.get(lease_id, 0) + 1
        timer = self._lease_timers.pop(lease_id, None)
        if timer is not None:
            timer.cancel()

    def session_ended(self, lease_id: str) -> None:
        """A session of ``lease_id`` ended; after its last, the lease's idle connections close in ``idle_seconds``."""
        left = self._sessions.get(lease_id, 0) - 1
        if left > 0:
            self._sessions[lease_id] = left
            return
        self._sessions.pop(lease_id, None)
        if lease_id not in self._lease_timers and not self._closed:
            loop = asyncio.get_running_loop()
            self._lease_timers[lease_id] = loop.call_later(self.idle_seconds, self._lease_unused, lease_id)

    def _lease_unused(self, lease_id: str) -> None:
        self._lease_timers.pop(lease_id, None)
        if lease_id not in self._sessions:
            self.close_lease(lease_id)

    def own(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task the pool owns: :meth:`aclose` cancels it (a connection's last reads)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def give_back_soon(self, upstream: Upstream) -> None:
        """:meth:`give_back` in the background, in a task the pool owns (and :meth:`aclose` ends)."""
        key = (upstream.lease_id, upstream.params_key)
        if self._closed or not upstream.healthy or self._full(key):  # decided now, at hand-back
            upstream.protocol.close()
            return
        self._resetting.add(upstream)  # its place is reserved from this moment
        self.own(self.give_back(upstream))

    async def give_back(self, upstream: Upstream) -> None:
        """Reset ``upstream`` with DISCARD ALL and keep it; close it if that fails, the pool is full or closing."""
        key = (upstream.lease_id, upstream.params_key)
        reserved = upstream in self._resetting
        if not reserved and (self._closed or not upstream.healthy or self._full(key)):
            upstream.protocol.close()
            return
        self._resetting.add(upstream)
        kept = False
        try:
            await _reset(upstream)
            kept = upstream in self._resetting  # else its lease or the pool was closed meanwhile
        except (SqlgateError, TimeoutError, OSError):
            pass
        finally:  # also when cancelled: a connection in an unknown state is never kept
            self._resetting.discard(upstream)
            if not kept:
                upstream.protocol.close()
        if kept and len(self._idle.get(key, ())) >= self.max_idle:  # a guard; the reservation prevents this
            upstream.protocol.close()
        elif kept:
            upstream.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(upstream)
            asyncio.get_running_loop().call_later(self.idle_seconds, self._expire, key, upstream)

    def _full(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> bool:
        """True when the idle connections of ``key``, with those being reset, fill its share."""
        resetting = sum(1 for u in self._resetting if (u.lease_id, u.params_key) == key)
        return len(self._idle.get(key, ())) + resetting >= self.max_idle

    def _expire(self, key: tuple[str, tuple[tuple[str, str], ...]], upstream: Upstream) -> None:
        """Close ``upstream`` if it is still idle after ``idle_seconds`` (idle logins do not pile up)."""
        idle = self._idle.get(key)
        if idle is None or upstream not in idle or time.monotonic() - upstream.idle_since < self.idle_seconds:
            return
        idle.remove(upstream)
        if not idle:
            del self._idle[key]
        upstream.protocol.close()

    def close_lease(self, lease_id: str) -> None:
        """Close every connection of ``lease_id`` the pool holds, idle or being reset."""
        for key in [key for key in self._idle if key[0] == lease_id]:
            for upstream in self._idle.pop(key):
                upstream.protocol.close()
        for upstream in [upstream for upstream in self._resetting if upstream.lease_id == lease_id]:
            self._resetting.discard(upstream)
            upstream.protocol.close()

    def close_all(self) -> None:
        """Close every connection the pool holds and keep none handed back from now on."""
        self._closed = True
        for timer in self._lease_timers.values():
            timer.cancel()
        self._lease_timers.clear()
        for idle in self._idle.values():
            for upstream in idle:
                upstream.protocol.close()
        self._idle.clear()
        for upstream in self._resetting:
            upstream.protocol.close()
        self._resetting.clear()

    async def aclose(self) -> None:
        """:meth:`close_all`, then end the background resets (none is left running)."""
        self.close_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return sum(len(idle) for idle in self._idle.values())


async def _reset(upstream: Upstream) -> None:
    """Run DISCARD ALL and read up to ReadyForQuery; the connection must come back idle."""
    protocol = upstream.protocol
    protocol.detach()
    protocol.write(_RESET)
    framer = Framer("backend")
    async with asyncio.timeout(RESET_TIMEOUT):
        while True:
            framer.feed(await protocol.read())
            while (frame := framer.next_frame()) is not None:
                if frame.type == ord("E"):
                    raise UpstreamError("DISCARD ALL failed on a pooled connection")
                if frame.type == ord("Z"):
                    upstream.transaction_status = chr(frame.data[5])
                    if upstream.transaction_status != "I" or framer.buffered:
                        raise UpstreamError("a pooled connection was not idle after DISCARD ALL")
                    return
