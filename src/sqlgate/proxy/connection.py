"""One client connection: TLS, login with a token, policy, lease, upstream, relay, and its end.

The login runs the data flow of the design: the password is the identity token
-> Authenticator -> policy decision -> broker lease -> an upstream connection
logged in with the lease -> the relay. Every refusal reaches the client as a FATAL
ErrorResponse with a real SQLSTATE (28000/28P01 identity, 42501 policy, 3D000
unknown database) and a sentence that says what to do.

The session ends when the client leaves, when the lease or grant ends, or when an
administrator ends it: the client then gets ErrorResponse 57P01 saying why.

Every statement that reached the server is audited. When the client leaves while the
server still owes answers, the connection is read to the next ReadyForQuery (a COPY
FROM STDIN is failed, a Sync of the gateway's own makes sure one comes) and each
statement is recorded with outcome ``client_gone`` and what the server said, before
``session.end``; statements after the client's last Sync are not waited for (the
server ends them uncommitted). With the default audit writer process, a statement's
answer reaches the client only after its record is in the writer's pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from sqlgate.access.answers import AnswerHold
from sqlgate.access.catalog import read_raw
from sqlgate.access.decide import requested_role
from sqlgate.access.masking import SessionMasking
from sqlgate.access.recorder import SessionRecorder
from sqlgate.config import is_loopback
from sqlgate.errors import (
    AccessDenied,
    AuditError,
    AuditQueueFull,
    ConfigError,
    IdentityError,
    ProtocolError,
    SqlgateError,
)
from sqlgate.identity.principal import Principal
from sqlgate.pgwire import (
    BackendKeyData,
    CancelRequested,
    ClientHandshake,
    Disconnect,
    PasswordReceived,
    Send,
    StartTls,
    StartupMessage,
    StartupReceived,
    UpstreamLogin,
    error_response,
)
from sqlgate.pgwire.actions import Action
from sqlgate.pgwire.framing import MessageTooLarge
from sqlgate.pgwire.startup import PROTOCOL_3_0
from sqlgate.policy.decide import Decision
from sqlgate.proxy.cloudsql import connect_cloudsql
from sqlgate.proxy.relay import Relay, StatementRecord
from sqlgate.proxy.upstream import Upstream, connect_upstream, send_cancel
from sqlgate.sessions import LiveSession, new_session_id

if TYPE_CHECKING:
    from sqlgate.broker.lease import Lease
    from sqlgate.proxy.listener import PgListener

log = logging.getLogger(__name__)

_SYNC = b"S\x00\x00\x00\x04"
_COPY_FAIL = b"f" + (4 + 24).to_bytes(4, "big") + b"the client disconnected\x00"  # ignored outside COPY
TLS_WRITE_SIZE = 8192
"""Bytes per write, so per TLS record, to a TLS client: what PostgreSQL sends (its 8 KiB output buffer).

libpq 18.0 reads one TLS record into at least 8 KiB of free buffer space; the rest of a bigger record
waits inside OpenSSL while the socket looks idle, and a client waiting on the socket (psycopg 3) never
sees it. Records no larger than the server's keep every client working as it does against PostgreSQL.
"""
_FORWARDED_PARAMETERS = ("application_name", "client_encoding", "DateStyle", "TimeZone", "extra_float_digits")


class ClientConnection(asyncio.Protocol):
    """The gateway side of one client's connection."""

    def __init__(self, listener: PgListener) -> None:
        self.listener = listener
        self.services = listener.services
        self.transport: asyncio.Transport | None = None
        self.source: str | None = None
        self.handshake: ClientHandshake | None = None
        self.relay: Relay | None = None
        self.upstream: Upstream | None = None
        self.session: LiveSession | None = None
        self.recorder = SessionRecorder(
            self.services.audit,
            None,
            pause_reading=partial(self._pause_client, paused=True),
            resume_reading=partial(self._pause_client, paused=False),
            spawn=self._spawn,
        )
        self.lease: Lease | None = None
        self.backend_key: BackendKeyData | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._ending = False
        self._upstream_lost = False
        self._tls = False  # the client's bytes travel in TLS: writes are cut to PostgreSQL's record size
        self._lease_counted = False  # this connection counts as a session of its lease in the pool
        self.answers = AnswerHold(self.services.audit, self._write)  # answers wait for their records' hand-over
        self._ready_before = 1 << 62  # drain: the server's ReadyForQuery count when the gateway sent its own Sync
        self._drained: asyncio.Future[None] | None = None  # set once the server has answered after the client left

    # -- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A client connected: start its login (with a deadline)."""
        self.transport = cast("asyncio.Transport", transport)  # uvloop's transports do not subclass it
        peer = transport.get_extra_info("peername")
        self.source = self.recorder.source = str(peer[0]) if peer else None
        self.handshake = ClientHandshake(
            tls_available=self.listener.tls_context is not None,
            require_tls=self.listener.require_tls,
            max_message_size=self.services.settings.proxy.max_message_bytes,
        )
        loop = asyncio.get_running_loop()
        login_timeout = self.services.settings.proxy.login_timeout.total_seconds()
        self._timers.append(loop.call_later(login_timeout, self._login_timeout))

    def data_received(self, data: bytes) -> None:
        """Bytes from the client: to the login until it succeeds, then to the relay."""
        try:
            if self.relay is not None:  # a refusal the gateway answers waits for its record too, as on MySQL
                self.answers.feed(self.relay, self.relay.client_data, data)
                if self.relay.terminated:
                    self._end("the client ended the session")
            elif self.handshake is not None:
                self._run(self.handshake.receive(data))
        except MessageTooLarge as exc:
            limit = self.services.settings.proxy.max_message_bytes
            self._client_broke_protocol("54000", str(exc), hint=f"the gateway's proxy.max_message_bytes is {limit}")
        except ProtocolError as exc:
            self._client_broke_protocol("08P01", str(exc))
        except AuditQueueFull:
            self._fatal("57P01", "the audit log cannot keep up; the session is ended rather than run unaudited")
        except Exception:
            log.exception("session %s from %s failed on bytes from the client", self._session_id, self.source)
            self._internal_failure()

    def _client_broke_protocol(self, sqlstate: str, message: str, hint: str | None = None) -> None:
        """FATAL to the client, which is then treated as gone: what it sent before is read to its end and audited."""
        self._write(error_response(sqlstate, message, severity="FATAL", hint=hint).encode())
        self._end(message)

    def _server_data(self, data: bytes) -> None:
        """Bytes from the server, to the relay; a failure ends the session with an error the client sees."""
        try:
            assert self.relay is not None
            self.answers.feed(self.relay, self.relay.server_data, data)
            if self._drained is not None and (not self.relay.owes_ready or self.relay.ready_seen > self._ready_before):
                self._drain_done()
        except ProtocolError as exc:
            log.warning("session %s: the server sent bytes that break the protocol: %s", self._session_id, exc)
            self._upstream_lost = True
            self._fatal("08P01", f"the database server broke the protocol: {exc}")
            self._drain_done()
        except AuditQueueFull:
            self._fatal("57P01", "the audit log cannot keep up; the session is ended rather than run unaudited")
        except Exception:
            log.exception("session %s from %s failed on bytes from the server", self._session_id, self.source)
            self._upstream_lost = True
            self._internal_failure()
            self._drain_done()

    def _drain_done(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _internal_failure(self) -> None:
        """A bug in the gateway (logged by the caller with the session id): end the session with XX000, never hang."""
        self._fatal(
            "XX000",
            f"internal error in the gateway (session {self._session_id}); the session is ended",
            hint="reconnect; the administrator can find the error in the gateway's log by the session id",
        )

    @property
    def _session_id(self) -> str:
        return self.session.id if self.session is not None else "-"

    def connection_lost(self, exc: Exception | None) -> None:
        """The client's socket closed."""
        del exc
        self._end("the client disconnected")

    def pause_writing(self) -> None:
        """The client reads slower than the server sends: stop reading from the server."""
        if self.upstream is not None:
            self.upstream.protocol.pause_reading(paused=True)

    def resume_writing(self) -> None:
        """The client caught up: read from the server again."""
        if self.upstream is not None:
            self.upstream.protocol.pause_reading(paused=False)

    # -- login ---------------------------------------------------------------

    def _run(self, actions: list[Action]) -> None:
        assert self.handshake is not None
        for action in actions:
            if isinstance(action, Send):
                self._write(action.data)
            elif isinstance(action, StartTls):
                self._start_tls(action.reply)
            elif isinstance(action, Disconnect):
                self._close()
            elif isinstance(action, CancelRequested):
                self.listener.forward_cancel(action.process_id, action.secret_key)
            elif isinstance(action, StartupReceived):
                self._run(self._on_startup(action.startup))
            elif isinstance(action, PasswordReceived):
                self._spawn(self._login(action.password))

    def _start_tls(self, reply: bytes) -> None:
        assert self.transport is not None
        self.transport.pause_reading()  # the ClientHello must reach the TLS layer, not us
        self._write(reply)
        self._spawn(self._tls_handshake())

    async def _tls_handshake(self) -> None:
        assert self.transport is not None
        assert self.handshake is not None
        context = self.listener.tls_context
        assert context is not None
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self.transport, self, context, server_side=True)
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.info("TLS handshake with %s failed: %s", self.source, exc)
            self._close()
            return
        if transport is None:
            self._close()
            return
        self.transport = transport
        self._tls = True
        self.handshake.tls_started()

    def _on_startup(self, startup: StartupMessage) -> list[Action]:
        assert self.handshake is not None
        database = startup.database or startup.user or ""
        config = self.services.settings.databases.get(database)
        if config is None:
            known = ", ".join(sorted(self.services.settings.databases)) or "none"
            return self.handshake.fail(
                "3D000", f'database "{database}" is not served by this gateway', hint=f"databases here: {known}"
            )
        if config.engine not in ("postgres", "cloudsql"):  # cloudsql: IAM database authentication, see cloudsql.py
            return self.handshake.fail(
                "0A000",
                f'database "{database}" is a {config.engine} database',
                hint="use the HTTP API or `sqlgate creds` for it",
            )
        if not self.handshake.tls_active and not is_loopback(self.source or ""):
            return self.handshake.fail(
                "28000",
                "sqlgate takes tokens only over TLS from non-local clients",
                hint="connect with sslmode=require",
            )
        return self.handshake.request_password()

    async def _login(self, token: str) -> None:
        assert self.handshake is not None
        assert self.handshake.startup is not None
        startup = self.handshake.startup
        try:
            principal = await self._authenticate(token)
            decision = await self._decide(principal, startup)
            await self._open(principal, decision, startup)
        except SqlgateError as exc:
            self._refuse(exc)
        except Exception:
            log.exception("login of a client from %s failed unexpectedly", self.source)
            self._refuse(SqlgateError("internal error in the gateway; the administrator can find it in its log"))

    async def _authenticate(self, token: str) -> Principal:
        return await self.services.access.authenticate(token, self.source, protocol="pgwire")

    async def _decide(self, principal: Principal, startup: StartupMessage) -> Decision:
        database = startup.database or startup.user or ""
        roles = self.services.settings.databases[database].roles
        role = requested_role(principal, startup.user or "", roles, quote='"')
        decisions = self.services.access.decisions
        return await decisions.authorize(principal, database, role, protocol="pgwire", purpose="session")

    async def _open(self, principal: Principal, decision: Decision, startup: StartupMessage) -> None:
        assert self.handshake is not None
        assert decision.role is not None
        assert decision.ttl is not None
        database = decision.database
        config = self.services.settings.databases[database]
        lease = await self.services.broker.lease(principal, database, decision.role, decision.ttl)
        self.lease = lease
        self.listener.pool.session_started(lease.id)
        self._lease_counted = True
        parameters = {k: v for k in _FORWARDED_PARAMETERS if (v := startup.parameters.get(k)) is not None}
        params_key = tuple(sorted(parameters.items()))
        upstream = self.listener.pool.take(lease.id, params_key)
        if upstream is None and config.engine == "cloudsql":  # the client certificate holds the IAM token
            dialer = self.listener.cloudsql.get(database, config)
            login = UpstreamLogin(lease.db_login, config.dbname, "", parameters)
            upstream = await connect_cloudsql(dialer, login, lease.id, params_key)
        if upstream is None:
            password = self.services.broker.password(lease)
            if password is None:
                raise AccessDenied(f"the lease for {database} has no credential in this gateway; reconnect")
            login = UpstreamLogin(lease.db_login, config.dbname, password, parameters)
            upstream = await connect_upstream(config, login, lease.id, params_key, alias=database)
        self.upstream = upstream
        masking = None
        if decision.mask:
            protocol = upstream.protocol
            masking = await self.services.access.masking.session(database, decision.mask, lambda: read_raw(protocol))
        if self.transport is None or self.transport.is_closing():
            await self.listener.pool.give_back(upstream)
            self.upstream = None
            return
        self._start_relay(principal, decision, lease, masking)

    def _start_relay(
        self, principal: Principal, decision: Decision, lease: Lease, masking: SessionMasking | None
    ) -> None:
        assert self.handshake is not None
        assert self.upstream is not None
        assert decision.role is not None
        upstream = self.upstream
        self.relay = Relay(
            guardrails=decision.guardrails,
            send_server=upstream.protocol.write,
            send_client=self.answers.send,
            on_statement=self._audit_statement,
            masking=masking,
        )
        self.relay.transaction_status = upstream.transaction_status
        self.relay.client_framer.max_size = self.services.settings.proxy.max_message_bytes
        self.relay.client_framer.stream_types = b"d"  # COPY data streams through, whatever its size
        self.relay.server_framer.stream_types = b"d" if masking is not None else b"dD"  # masking reads whole rows
        upstream.protocol.attach(self._server_data, self._on_upstream_lost, self._pause_client)
        self.session = LiveSession(
            id=new_session_id(),
            kind="pgwire",
            principal=principal,
            database=decision.database,
            role=decision.role,
            db_login=lease.db_login,
            source=self.source,
            lease_id=lease.id,
            expires_at=self._deadline(decision, lease),
        )
        self.services.sessions.add(self.session, self._ended_by_admin)
        short = self.handshake.protocol == PROTOCOL_3_0
        self.backend_key = self.listener.register_cancel(self, short, upstream.backend_key.process_id)
        self._watch_lifetime(lease)
        self.recorder.started(self.session)
        self.services.audit.enqueue(
            self.recorder.event(
                "session.start",
                "success",
                data={
                    "role": decision.role,
                    "rules": list(decision.matched_rules),
                    "expires_at": _iso(self.session.expires_at),
                },
            )
        )
        actions = self.handshake.succeed(upstream.parameters, self.backend_key)
        self._run(actions)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._timers.append(
            asyncio.get_running_loop().call_later(
                max(0.0, (self.session.expires_at - datetime.now(UTC)).total_seconds())
                if self.session.expires_at
                else 1e9,
                self._expired,
            )
        )
        leftover = self.handshake.framer.take_buffered()
        if leftover:
            self.data_received(leftover)  # what the client sent with its password, as if it came now

    @staticmethod
    def _deadline(decision: Decision, lease: Lease) -> datetime:
        assert decision.ttl is not None
        return min(lease.expires_at, datetime.now(UTC) + decision.ttl)

    def _watch_lifetime(self, lease: Lease) -> None:
        def lease_ended(_lease_id: str) -> None:
            self._end_with_error(f"your database login for {lease.database} was revoked")

        task = self.services.broker.on_end(lease.id, lease_ended)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- statements ----------------------------------------------------------

    def _audit_statement(self, record: StatementRecord) -> None:
        self.recorder.statement(
            protocol=record.protocol,
            sql=record.sql,
            params=record.params,
            result=record.outcome,
            rows=record.rows,
            duration_ms=record.duration_ms,
            sqlstate=record.sqlstate,
            error=record.error,
            would_deny=record.would_deny,
            tags=record.tags,
            params_bounded=True,
        )

    # -- the end ---------------------------------------------------------------

    def _login_timeout(self) -> None:
        if self.relay is None:
            self._fatal("08P01", "the login did not finish in time")

    def _expired(self) -> None:
        self._end_with_error("your access ended: the grant's time limit was reached")

    async def _ended_by_admin(self, reason: str) -> None:
        self._end_with_error(f"an administrator ended this session: {reason}")

    def _on_upstream_lost(self) -> None:
        self._upstream_lost = True
        self._drain_done()
        if not self._ending:
            self._fatal("57P01", "the database server closed the connection")

    def _pause_client(self, *, paused: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _end_with_error(self, reason: str) -> None:
        self._fatal("57P01", reason, hint="reconnect to start a new session if policy still allows it")

    def _fatal(self, sqlstate: str, message: str, hint: str | None = None) -> None:
        self._write(error_response(sqlstate, message, severity="FATAL", hint=hint).encode())
        self._end(message, reusable=False)

    def _refuse(self, exc: SqlgateError) -> None:
        assert self.handshake is not None
        try:
            self._run(self.handshake.fail_with(exc))
        except RuntimeError:
            self._close()
        if not isinstance(exc, IdentityError | AccessDenied | ConfigError):
            log.warning("refused a client from %s: %s", self.source, exc)

    def shut_down(self) -> None:
        """The gateway is stopping: end this connection, whatever phase it is in."""
        self._fatal("57P01", "the gateway is shutting down", hint="reconnect once it is back")

    def _end(self, reason: str, *, reusable: bool = True) -> None:
        if self._ending:
            return
        self._ending = True
        self.listener.forget(self)
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._close()
        self.listener.unregister_cancel(self)
        upstream, self.upstream = self.upstream, None
        relay = self.relay
        if upstream is not None and relay is not None and relay.owes_statements:
            if reusable and not self._upstream_lost and relay.owes_ready and not relay.mid_message:
                # the client left mid-statement: read the answer to its end (statements after the last Sync are
                # not waited for: without a Sync the server ends them uncommitted when the connection closes)
                relay.leave()
                self._drained = asyncio.get_running_loop().create_future()
                self.listener.pool.own(self._drain(upstream, relay, reason))
                return
            relay.abandon("client_gone" if reusable else "interrupted")  # record what is known
        if upstream is not None:
            self._release(upstream, reusable=reusable)
        self._record_end(reason)

    async def _drain(self, upstream: Upstream, relay: Relay, reason: str) -> None:
        """Read what the server still owes after the client left; every statement is recorded with its end."""
        assert self._drained is not None
        upstream.protocol.pause_reading(paused=False)
        upstream.protocol.write(_COPY_FAIL)  # a COPY FROM STDIN the client left ends with an error
        synced = not relay.forwarded_since_sync  # a Sync commits nothing the client did not sync itself
        if synced:  # and guarantees a ReadyForQuery even if an error left the server skipping to the next Sync
            upstream.protocol.write(_SYNC)
            self._ready_before = relay.ready_seen
        finished = False
        try:
            limit = self.services.settings.proxy.orphan_statement_timeout.total_seconds()
            async with asyncio.timeout(limit):
                await self._drained
            finished = not self._upstream_lost and not synced  # an extra ReadyForQuery may still come: not pooled
        except TimeoutError:
            log.info(
                "session %s: a statement still ran %.0f s after its client left; cancelled", self._session_id, limit
            )
            await send_cancel(upstream)
        finally:
            relay.abandon("client_gone")
            self._release(upstream, reusable=finished)
            self._record_end(reason)

    def _release(self, upstream: Upstream, *, reusable: bool) -> None:
        """Give ``upstream`` back to the pool when it is clean and its lease live; else close it."""
        upstream.protocol.detach()
        relay = self.relay
        clean = reusable and not self._upstream_lost and relay is not None and relay.idle
        if clean and self.lease is not None and self.lease.id and self._lease_live():
            upstream.transaction_status = relay.transaction_status if relay else "I"
            self.listener.pool.give_back_soon(upstream)
        else:
            upstream.protocol.close()

    def _record_end(self, reason: str) -> None:
        if self.lease is not None and self._lease_counted:
            self._lease_counted = False
            self.listener.pool.session_ended(self.lease.id)
        if self.session is not None:
            self.services.sessions.remove(self.session.id)
            with contextlib.suppress(AuditQueueFull, AuditError):
                self.services.audit.enqueue(
                    self.recorder.event(
                        "session.end",
                        "info",
                        reason=reason,
                        data={
                            "statements": self.session.statements,
                        },
                    )
                )
            self.recorder.ended()

    def _lease_live(self) -> bool:
        return self.lease is not None and self.lease.is_live()

    # -- helpers -----------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self._tls and len(data) > TLS_WRITE_SIZE:
            for start in range(0, len(data), TLS_WRITE_SIZE):
                self.transport.write(data[start : start + TLS_WRITE_SIZE])
            return
        self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def new_backend_key(short: bool, process_id: int) -> BackendKeyData:
    """The server's ``process_id`` with a random secret of the gateway's: 4 bytes for protocol 3.0, 32 for 3.2."""
    return BackendKeyData(process_id, secrets.token_bytes(4 if short else 32))
