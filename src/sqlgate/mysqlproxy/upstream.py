"""The connection from the gateway to a MySQL/MariaDB server, logged in with a lease's login.

The login is :class:`sqlgate.mywire.upstream_login.UpstreamLogin` driven over a
socket: TLS where the database's ``tls`` setting asks for it (``prefer`` uses it
when the server offers it; ``require`` and ``verify-full`` refuse a server
without it; ``verify-full`` checks the certificate and host name). Before the
connection is handed to a client, :mod:`.catalog` reads which base tables and
views the login can see (for masking). No pool: each session logs in anew. The
socket's protocol is the PostgreSQL relay's
(:class:`sqlgate.proxy.upstream.UpstreamProtocol`): bytes to the login, then to
the relay, with backpressure both ways; nothing in it knows either protocol.

A ``cloudsql`` database whose instance runs MySQL is reached as
:mod:`sqlgate.cloudsql` describes (``connectSettings``, an ephemeral certificate,
TLS 1.3 to the instance's server-side proxy on port 3307), then the same MySQL
login runs inside that TLS stream, as the connector's pymysql path does
(``connect(sock)`` on the wrapped socket): the user is the MySQL IAM database user
(the email's part before ``@``) and the password is empty, because the IAM login
token travels in the client certificate (automatic IAM database authentication);
a server asking for ``mysql_clear_password`` gets that empty password over the
TLS stream, as pymysql sends it. ``KILL QUERY`` for such a session opens a second
connection the same way, as the same IAM user (a user may kill its own threads).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from sqlgate.cloudsql import SERVER_PROXY_PORT, CloudSqlDialer, connect_failure, mysql_user_of, require_engine
from sqlgate.config import DatabaseConfig
from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.mywire.actions import LoggedIn, Refused, Send, StartTls
from sqlgate.mywire.commands import Query
from sqlgate.mywire.constants import ERR_HEADER, OK_HEADER, Capability
from sqlgate.mywire.handshake import HandshakeV10
from sqlgate.mywire.packets import PacketReader, encode
from sqlgate.mywire.results import Err, column_count, is_terminator, text_row
from sqlgate.mywire.upstream_login import UpstreamLogin
from sqlgate.proxy.upstream import UpstreamProtocol

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
QUERY_TIMEOUT = 10.0


@dataclass(frozen=True)
class CloudSqlRoute:
    """How a Cloud SQL connection was opened: enough to open another one (for KILL QUERY)."""

    dialer: CloudSqlDialer
    login: str  # the lease's login (PostgreSQL form), which names the service account too


@dataclass(eq=False)
class Upstream:
    """A logged-in server connection: its protocol, the server's greeting and the capabilities in force."""

    protocol: UpstreamProtocol
    handshake: HandshakeV10
    capabilities: int
    status: int
    tls: bool
    cloudsql: CloudSqlRoute | None = None

    @property
    def thread_id(self) -> int:
        """The server's connection id (what KILL QUERY names)."""
        return self.handshake.connection_id


async def connect_upstream(  # noqa: PLR0913 - a login's parts, named
    config: DatabaseConfig,
    *,
    user: str,
    password: str,
    capabilities: int,
    charset: int,
    attributes: dict[str, str] | None = None,
) -> Upstream:
    """Open a connection to ``config``'s server and log in; closed again if the login does not finish."""
    loop = asyncio.get_running_loop()
    protocol: UpstreamProtocol | None = None
    login = UpstreamLogin(
        user=user,
        password=password,
        database=config.dbname,
        capabilities=capabilities,
        charset=charset,
        attributes=attributes,
        tls=config.tls,
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            transport, protocol = await loop.create_connection(UpstreamProtocol, config.host, config.port)
            done = await _drive(loop, login, protocol, transport, config)
    except BaseException as exc:
        if protocol is not None:
            protocol.close()
        error = _connect_error(exc, config)
        if error is None:
            raise
        raise error from exc
    return Upstream(protocol, done.handshake, login.capabilities, done.ok.status, login.tls_active)


async def connect_cloudsql_upstream(  # noqa: PLR0913 - a login's parts, named
    dialer: CloudSqlDialer,
    *,
    login: str,
    database: str | None,
    capabilities: int,
    charset: int,
    attributes: dict[str, str] | None = None,
) -> Upstream:
    """Log in to a Cloud SQL for MySQL instance with lease login ``login`` over the certificate's TLS stream.

    The MySQL user is ``login``'s MySQL IAM user (``alice@example.com`` -> ``alice``). The certificate is that
    of the configured service account whose login ``login`` is (impersonated), else the gateway's own.
    """
    user = mysql_user_of(login)
    service_account = dialer.service_account_for(login)
    info = await dialer.connect_info(service_account)
    require_engine(dialer, info, "MYSQL", "MySQL")
    ip = info.settings.ip
    loop = asyncio.get_running_loop()
    protocol: UpstreamProtocol | None = None
    mysql_login = UpstreamLogin(
        user=user,
        password="",  # automatic IAM database authentication: the token is in the client certificate
        database=database,
        capabilities=capabilities,
        charset=charset,
        attributes=attributes,
        tls="disable",  # no SSLRequest: the stream is TLS from its first byte
    )
    mysql_login.tls_active = True  # so a switch to mysql_clear_password is answered, over this TLS stream
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            transport, protocol = await loop.create_connection(
                UpstreamProtocol, ip, SERVER_PROXY_PORT, ssl=info.context, server_hostname=ip
            )
            done = await _drive(loop, mysql_login, protocol, transport, None)
    except BaseException as exc:
        if protocol is not None:
            protocol.close()
        dialer.invalidate(service_account)  # as the connector: any failure fetches a new certificate next time
        error = connect_failure(dialer, ip, exc)
        if error is None and isinstance(exc, ProtocolError):
            error = UpstreamError(f"Cloud SQL instance {dialer.name} broke the protocol during login: {exc.message}")
        if error is None:
            raise
        raise error from exc
    route = CloudSqlRoute(dialer, login)
    return Upstream(protocol, done.handshake, mysql_login.capabilities, done.ok.status, tls=True, cloudsql=route)


async def _drive(
    loop: asyncio.AbstractEventLoop,
    login: UpstreamLogin,
    protocol: UpstreamProtocol,
    transport: asyncio.Transport,
    config: DatabaseConfig | None,
) -> LoggedIn:
    while True:
        actions = login.receive(await protocol.read())
        while actions:
            action = actions.pop(0)
            if isinstance(action, Send):
                protocol.write(action.data)
            elif isinstance(action, StartTls):
                if config is None:
                    raise UpstreamError("the database server asked to start TLS inside a TLS stream")
                hostname = config.host if config.tls == "verify-full" else None
                new = await loop.start_tls(transport, protocol, _client_context(config), server_hostname=hostname)
                if new is None:
                    raise UpstreamError("TLS to the database could not be started")
                transport = protocol.transport = new
                actions = login.tls_started() + actions
            elif isinstance(action, Refused):
                error = action.error
                raise UpstreamError(f"the database server refused the login: {error.message} (error {error.code})")
            elif isinstance(action, LoggedIn):
                return action


def _client_context(config: DatabaseConfig) -> ssl.SSLContext:
    if config.tls == "verify-full":
        context = ssl.create_default_context(cafile=str(config.tls_ca_file) if config.tls_ca_file else None)
    else:  # prefer / require: encrypted, not authenticated
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _connect_error(exc: BaseException, config: DatabaseConfig) -> UpstreamError | None:
    where = f"{config.host}:{config.port}"
    if isinstance(exc, TimeoutError):
        return UpstreamError(f"timed out connecting to the database at {where}")
    if isinstance(exc, ssl.SSLError):
        return UpstreamError(f"TLS to the database at {where} failed: {exc.reason or exc}")
    if isinstance(exc, OSError):
        return UpstreamError(f"cannot reach the database at {where}: {exc.strerror or exc}")
    if isinstance(exc, ProtocolError):
        return UpstreamError(f"the database at {where} broke the protocol during login: {exc.message}")
    return None


async def query_rows(upstream: Upstream, sql: str) -> list[list[str | None]]:
    """Run ``sql`` (one statement) on a logged-in connection not yet relayed; its rows as text."""
    protocol = upstream.protocol
    deprecate_eof = bool(upstream.capabilities & Capability.DEPRECATE_EOF)
    protocol.write(encode(Query(sql).encode(), 0))
    reader = PacketReader(what="database server")
    rows: list[list[str | None]] = []
    columns = -1
    seen = 0
    async with asyncio.timeout(QUERY_TIMEOUT):
        while True:
            reader.feed(await protocol.read())
            for packet in reader.packets():
                payload = packet.payload
                if packet.first == ERR_HEADER:
                    raise UpstreamError(f"the database refused a catalog query: {Err.decode(payload).message}")
                if columns < 0:
                    if packet.first == OK_HEADER:
                        return rows
                    columns = column_count(payload)
                elif seen < columns:
                    seen += 1
                elif seen == columns and not deprecate_eof:
                    seen += 1  # the EOF after the column definitions
                elif is_terminator(payload):
                    return rows
                else:
                    values = text_row(payload, columns)
                    rows.append([None if v is None else v.decode("utf-8", "replace") for v in values])


async def server_greeting(host: str, port: int) -> HandshakeV10:
    """The greeting a server sends (to learn its version) without logging in."""
    async with asyncio.timeout(CONNECT_TIMEOUT):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            packets = PacketReader(what="database server")
            while True:
                data = await reader.read(4096)
                if not data:
                    raise UpstreamError("the database server closed the connection before its greeting")
                packets.feed(data)
                packet = packets.next_packet()
                if packet is not None:
                    return HandshakeV10.decode(packet.payload)
        finally:
            writer.close()


KILL_CHARSET = 45  # utf8mb4_general_ci


async def kill_cloudsql_thread(route: CloudSqlRoute, thread_id: int) -> bool:
    """``KILL QUERY <thread_id>`` on a Cloud SQL instance, as the IAM user who owns the thread; False on failure."""
    try:
        upstream = await connect_cloudsql_upstream(
            route.dialer,
            login=route.login,
            database=None,
            capabilities=Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH,
            charset=KILL_CHARSET,
        )
    except UpstreamError as exc:
        log.warning("could not reach Cloud SQL instance %s to cancel a query: %s", route.dialer.name, exc)
        return False
    try:
        await query_rows(upstream, f"KILL QUERY {int(thread_id)}")
    except (UpstreamError, TimeoutError) as exc:
        log.info("KILL QUERY of Cloud SQL thread %s failed: %s", thread_id, exc)
        return False
    finally:
        upstream.protocol.close()
    return True
