"""One MySQL client connection: TLS, login with a token, policy, lease, upstream, relay, and its end.

The same data flow as a pgwire session: the password (sent with
``mysql_clear_password``) is the identity token -> the access pipeline's
authentication and decision -> a broker lease -> an upstream connection logged in
with the lease's login -> the relay. Refusals reach the client as ERR packets:
1045 / 28000 for identity, 1044 / 42000 for policy, 1049 / 42000 for an unknown
database, 1105 / HY000 when the database cannot be reached.

The session ends when the client leaves, when the lease or the grant's time ends,
or when an administrator ends it: the client then gets ERR 1927 / 70100 saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlgate.access.answers import AnswerHold
from sqlgate.access.decide import requested_role
from sqlgate.access.mysql.masking import MysqlMasking
from sqlgate.access.mysql.statements import Kill, StatementPolicy
from sqlgate.access.recorder import SessionRecorder
from sqlgate.config import is_loopback
from sqlgate.errors import AccessDenied, AuditQueueFull, IdentityError, ProtocolError, SqlgateError
from sqlgate.identity.principal import Principal
from sqlgate.mysqlproxy.catalog import load_catalog
from sqlgate.mysqlproxy.relay import Relay, StatementRecord
from sqlgate.mysqlproxy.tls import TlsLayer
from sqlgate.mysqlproxy.upstream import Upstream, connect_cloudsql_upstream, connect_upstream
from sqlgate.mywire.actions import Action, Disconnect, LoginReceived, PasswordReceived, Send, StartTls
from sqlgate.mywire.constants import CLEAR_PASSWORD, Capability
from sqlgate.mywire.handshake import HandshakeResponse
from sqlgate.mywire.packets import PacketTooLarge, encode
from sqlgate.mywire.results import Err
from sqlgate.mywire.server_login import ClientLogin
from sqlgate.policy.decide import Decision
from sqlgate.sessions import LiveSession, new_session_id

if TYPE_CHECKING:
    from sqlgate.broker.lease import Lease
    from sqlgate.mysqlproxy.listener import MysqlListener

log = logging.getLogger(__name__)

CLIENT_LEFT = "the client disconnected"
ENDED_CODE, ENDED_SQLSTATE = 1927, "70100"  # ER_CONNECTION_KILLED
_KEPT_ATTRIBUTES = ("_client_name", "_client_version", "program_name", "_os", "_platform")


class MysqlClientConnection(asyncio.Protocol):
    """The gateway side of one MySQL client's connection."""

    def __init__(self, listener: MysqlListener) -> None:
        self.listener = listener
        self.services = listener.services
        self.connection_id = listener.next_connection_id()
        self.transport: asyncio.Transport | None = None
        self.source: str | None = None
        self.login: ClientLogin | None = None
        self.relay: Relay | None = None
        self.upstream: Upstream | None = None
        self.session: LiveSession | None = None
        self.principal: Principal | None = None
        self.lease: Lease | None = None
        self.database: str | None = None
        self.recorder = SessionRecorder(
            self.services.audit,
            None,
            pause_reading=self._pause_reading,
            resume_reading=self._resume_reading,
            spawn=self._spawn,
        )
        self._tasks: set[asyncio.Future[Any]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._ending = False
        self._early = b""  # bytes a client sent after its token, before the relay started
        self.answers = AnswerHold(self.services.audit, self._write)  # answers wait for their records' hand-over
        self.tls: TlsLayer | None = None

    # -- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A client connected: greet it and start the login deadline."""
        self.transport = cast("asyncio.Transport", transport)
        peer = transport.get_extra_info("peername")
        self.source = self.recorder.source = str(peer[0]) if peer else None
        self.login = ClientLogin(
            connection_id=self.connection_id,
            server_version=self.listener.server_version,
            tls_available=self.listener.tls_context is not None,
            require_tls=self.listener.require_tls,
        )
        self._run(self.login.start())
        login_timeout = self.services.settings.proxy.login_timeout.total_seconds()
        self._timers.append(asyncio.get_running_loop().call_later(login_timeout, self._login_timeout))

    def data_received(self, data: bytes) -> None:
        """Bytes from the client: through TLS when started, to the login until it succeeds, then to the relay."""
        try:
            plain = self._decrypt(data) if self.tls is not None else data
            if plain:
                self._client_bytes(plain)
        except PacketTooLarge as exc:
            self._fatal(1153, "08S01", f"{exc.message} (proxy.max_message_bytes)")
        except ProtocolError as exc:
            self._fatal(1835, "08S01", f"malformed packet: {exc.message}")
        except AuditQueueFull:
            self._fatal(ENDED_CODE, ENDED_SQLSTATE, "the audit log cannot keep up; the session is ended")
        except Exception:
            log.exception("MySQL session %s from %s failed on bytes from the client", self._session_id, self.source)
            self._internal_failure()

    def _decrypt(self, data: bytes) -> bytes:
        assert self.tls is not None
        plain, reply = self.tls.receive(data)
        if reply and self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)
        if self.tls.closed:
            self._end("the client closed TLS")
            return b""
        return plain

    def _client_bytes(self, data: bytes) -> None:
        if self.relay is not None:
            self.answers.feed(self.relay, self.relay.client_data, data)
            if self.relay.terminated:
                self._end("the client ended the session")
        elif self.login is not None and self.login.state not in {"login", "password", "done", "failed"}:
            self._run(self.login.receive(data))
        elif self.login is not None:
            self._early += data

    def _server_data(self, data: bytes) -> None:
        try:
            assert self.relay is not None
            self.answers.feed(self.relay, self.relay.server_data, data)
        except ProtocolError as exc:
            log.warning("MySQL session %s: the server broke the protocol: %s", self._session_id, exc)
            self._fatal(1105, "HY000", f"the database server broke the protocol: {exc.message}")
        except AuditQueueFull:
            self._fatal(ENDED_CODE, ENDED_SQLSTATE, "the audit log cannot keep up; the session is ended")
        except Exception:
            log.exception("MySQL session %s from %s failed on bytes from the server", self._session_id, self.source)
            self._internal_failure()

    def _internal_failure(self) -> None:
        self._fatal(1105, "HY000", f"internal error in the gateway (session {self._session_id}); the session is ended")

    @property
    def _session_id(self) -> str:
        return self.session.id if self.session is not None else "-"

    def connection_lost(self, exc: Exception | None) -> None:
        """The client's socket closed."""
        del exc
        self._end(CLIENT_LEFT)

    def pause_writing(self) -> None:
        """The client reads slower than the server sends."""
        if self.upstream is not None:
            self.upstream.protocol.pause_reading(paused=True)

    def resume_writing(self) -> None:
        """The client caught up."""
        if self.upstream is not None:
            self.upstream.protocol.pause_reading(paused=False)

    # -- login ---------------------------------------------------------------

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._write(action.data)
            elif isinstance(action, StartTls):
                self._start_tls()
            elif isinstance(action, Disconnect):
                self._close()
            elif isinstance(action, LoginReceived):
                self._run(self._on_login(action.response))
            elif isinstance(action, PasswordReceived):
                self._spawn(self._authenticate_and_open(action.password))

    def _start_tls(self) -> None:
        """Put TLS under the login; the client's handshake may have arrived with its SSLRequest."""
        assert self.login is not None
        context = self.listener.tls_context
        assert context is not None
        self.tls = TlsLayer(context)
        self.login.tls_started()
        leftover = self.login.take_buffered()
        if leftover:
            asyncio.get_running_loop().call_soon(self.data_received, leftover)

    def _on_login(self, response: HandshakeResponse) -> list[Action]:
        assert self.login is not None
        database = response.database or ""
        config = self.services.settings.databases.get(database)
        if config is None:
            known = ", ".join(sorted(n for n, c in self.services.settings.databases.items() if c.engine == "mysql"))
            return self.login.fail(
                1049,
                "42000",
                f"database '{database}' is not served by this gateway (MySQL databases: {known or 'none'})",
            )
        if config.engine == "postgres":  # cloudsql: its engine is known once the Admin API answers, see upstream.py
            return self.login.fail(
                1049,
                "42000",
                f"database '{database}' is a {config.engine} database; connect to the PostgreSQL listener",
            )
        if not self.login.tls_active and (self.listener.require_tls or not is_loopback(self.source or "")):
            where = "on this listener" if self.listener.require_tls else "from non-local clients"
            return self.login.fail(1045, "28000", f"sqlgate takes tokens only over TLS {where}; connect with --ssl")
        if not response.capabilities & Capability.PLUGIN_AUTH and response.auth_plugin != CLEAR_PASSWORD:
            return self.login.fail(
                1251, "08004", "the client cannot switch to mysql_clear_password (no CLIENT_PLUGIN_AUTH); upgrade it"
            )
        self.database = database
        return self.login.request_password()

    async def _authenticate_and_open(self, token: str) -> None:
        assert self.login is not None
        assert self.login.response is not None
        try:
            principal = await self.services.access.authenticate(token, self.source, protocol="mysql")
            self.principal = principal
            roles = self.services.settings.databases[self.database or ""].roles
            role = requested_role(principal, self.login.response.user, roles)
            decision = await self.services.access.decisions.authorize(
                principal, self.database or "", role, protocol="mysql", purpose="session"
            )
            await self._open(principal, decision)
        except SqlgateError as exc:
            self._refuse(exc)
        except Exception:
            log.exception("login of a MySQL client from %s failed unexpectedly", self.source)
            self._refuse(SqlgateError("internal error in the gateway; the administrator can find it in its log"))

    async def _open(self, principal: Principal, decision: Decision) -> None:
        assert self.login is not None
        assert self.login.response is not None
        assert decision.role is not None
        assert decision.ttl is not None
        database = decision.database
        config = self.services.settings.databases[database]
        lease = await self.services.broker.lease(principal, database, decision.role, decision.ttl)
        self.lease = lease
        policy = StatementPolicy(
            decision.guardrails,
            database=config.dbname,
            rule=decision.matched_rules[0] if decision.matched_rules else None,
            alias=database,
        )
        capabilities = self.login.capabilities
        if not policy.allows_local_infile():
            capabilities &= ~Capability.LOCAL_FILES
        response = self.login.response
        attributes = {k: v for k in _KEPT_ATTRIBUTES if (v := response.attributes.get(k)) is not None}
        attributes["sqlgate_session"] = str(self.connection_id)
        upstream = await self._connect(database, lease, capabilities, attributes)
        self.upstream = upstream
        if (upstream.capabilities ^ self.login.capabilities) & Capability.DEPRECATE_EOF:
            upstream.protocol.close()
            raise SqlgateError("the database server does not support CLIENT_DEPRECATE_EOF as the client asked")
        masking = None
        if decision.mask:
            catalog = await load_catalog(upstream)
            masking = MysqlMasking(
                decision.mask,
                hash_key=self.services.deployment_id.encode(),
                base_tables=catalog.base_tables,
                views=catalog.views,
                database=config.dbname,
            )
        if self.transport is None or self.transport.is_closing():
            upstream.protocol.close()
            self.upstream = None
            return
        self._start_relay(principal, decision, lease, policy, masking)

    async def _connect(self, database: str, lease: Lease, capabilities: int, attributes: dict[str, str]) -> Upstream:
        """Log in to the server with the lease: its password, or Cloud SQL's IAM certificate."""
        assert self.login is not None
        assert self.login.response is not None
        config = self.services.settings.databases[database]
        charset = self.login.response.charset
        if config.engine == "cloudsql":  # the client certificate holds the IAM token
            return await connect_cloudsql_upstream(
                self.listener.cloudsql.get(database, config),
                login=lease.db_login,
                database=config.dbname,
                capabilities=capabilities,
                charset=charset,
                attributes=attributes,
            )
        password = self.services.broker.password(lease)
        if password is None:
            raise AccessDenied(f"the lease for {database} has no credential in this gateway; reconnect")
        return await connect_upstream(
            config,
            user=lease.db_login,
            password=password,
            capabilities=capabilities,
            charset=charset,
            attributes=attributes,
        )

    def _start_relay(
        self,
        principal: Principal,
        decision: Decision,
        lease: Lease,
        policy: StatementPolicy,
        masking: MysqlMasking | None,
    ) -> None:
        assert self.login is not None
        assert self.upstream is not None
        assert decision.role is not None
        upstream = self.upstream
        self.relay = Relay(
            capabilities=self.login.capabilities,
            policy=policy,
            send_server=upstream.protocol.write,
            send_client=self.answers.send,
            on_statement=self._audit_statement,
            on_kill=self._kill,
            masking=masking,
            max_client_packet=self.services.settings.proxy.max_message_bytes,
        )
        upstream.protocol.attach(self._server_data, self._on_upstream_lost, self._pause_client)
        expires = min(lease.expires_at, datetime.now(UTC) + decision.ttl) if decision.ttl else lease.expires_at
        self.session = LiveSession(
            id=new_session_id(),
            kind="mysql",
            principal=principal,
            database=decision.database,
            role=decision.role,
            db_login=lease.db_login,
            source=self.source,
            lease_id=lease.id,
            expires_at=expires,
        )
        self.services.sessions.add(self.session, self._ended_by_admin)
        self.listener.register(self)
        self._watch_lease(lease)
        self.recorder.started(self.session)
        self.services.audit.enqueue(
            self.recorder.event(
                "session.start",
                "success",
                data={
                    "protocol": "mysql",
                    "role": decision.role,
                    "rules": list(decision.matched_rules),
                    "expires_at": expires.isoformat(),
                    "server_thread": upstream.thread_id,
                },
            )
        )
        self._run(self.login.succeed(upstream.status))
        for timer in self._timers:
            timer.cancel()
        seconds = max(0.0, (expires - datetime.now(UTC)).total_seconds())
        self._timers = [asyncio.get_running_loop().call_later(seconds, self._expired)]
        leftover = self.login.take_buffered() + self._early
        if leftover:
            self.answers.feed(self.relay, self.relay.client_data, leftover)

    def _watch_lease(self, lease: Lease) -> None:
        def lease_ended(_lease_id: str) -> None:
            self.end_with_error(f"your database login for {lease.database} was revoked")

        task = self.services.broker.on_end(lease.id, lease_ended)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- statements and cancel --------------------------------------------------

    def _audit_statement(self, record: StatementRecord) -> None:
        self.recorder.statement(
            protocol="mysql",
            sql=record.sql,
            params=record.params,
            result=record.outcome,
            rows=record.rows,
            duration_ms=record.duration_ms,
            sqlstate=record.sqlstate,
            error=record.error,
            would_deny=record.would_deny,
        )

    def _pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _kill(self, kill: Kill) -> Err | None:
        """A client's KILL: only its own identity's sessions; the server thread is killed by the admin."""
        target = self.listener.session_by_id(kill.connection_id)
        if target is None or target.principal is None or self.principal is None:
            return Err(1094, "HY000", f"Unknown thread id: {kill.connection_id}")
        if target.principal.key != self.principal.key:
            return Err(1095, "HY000", f"You are not owner of thread {kill.connection_id}")
        if not kill.query_only:
            if target is self:
                self._spawn(self._end_soon())
            else:
                target.end_with_error("the session was ended by KILL from another connection of yours")
            return None
        if target.upstream is not None and target.database is not None:
            config = self.services.settings.databases[target.database]
            self.listener.forward_kill(config, target.upstream)
        return None

    async def _end_soon(self) -> None:
        await asyncio.sleep(0)
        self._end("the client ended the session with KILL")

    # -- the end ---------------------------------------------------------------

    def _login_timeout(self) -> None:
        if self.relay is None:
            self._fatal(1045, "28000", "the login did not finish in time")

    def _expired(self) -> None:
        self.end_with_error("your access ended: the grant's time limit was reached")

    async def _ended_by_admin(self, reason: str) -> None:
        self.end_with_error(f"an administrator ended this session: {reason}")

    def _on_upstream_lost(self) -> None:
        if not self._ending:
            self._fatal(ENDED_CODE, ENDED_SQLSTATE, "the database server closed the connection")

    def _pause_client(self, *, paused: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def end_with_error(self, reason: str) -> None:
        """End the session with ERR 1927 saying why (the lease or grant ended, an administrator, a KILL)."""
        self._fatal(ENDED_CODE, ENDED_SQLSTATE, f"{reason}; reconnect to start a new session if policy still allows it")

    def _fatal(self, code: int, sqlstate: str, message: str) -> None:
        self._write(encode(Err(code, sqlstate, message).encode(), 0))
        self._end(message)

    def _refuse(self, exc: SqlgateError) -> None:
        assert self.login is not None
        message = str(exc)
        if isinstance(exc, IdentityError):
            code, state = 1045, "28000"
        elif isinstance(exc, AccessDenied):
            code, state = 1044, "42000"
        else:
            code, state = 1105, "HY000"
            log.warning("refused a MySQL client from %s: %s", self.source, exc)
        self._run(self.login.fail(code, state, message))
        self._end(message)

    def shut_down(self) -> None:
        """The gateway is stopping: end this connection, whatever phase it is in."""
        self._fatal(ENDED_CODE, ENDED_SQLSTATE, "the gateway is shutting down; reconnect once it is back")

    def _end(self, reason: str) -> None:
        if self._ending:
            return
        self._ending = True
        self.listener.forget(self)
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._close()
        if self.relay is not None:
            with contextlib.suppress(AuditQueueFull):
                result = "client_gone" if reason == CLIENT_LEFT else "interrupted"
                self.relay.abandon(result, f"the session ended before the statement finished: {reason}")
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.protocol.detach()
            upstream.protocol.close()
        if self.session is not None:
            self.services.sessions.remove(self.session.id)
            with contextlib.suppress(AuditQueueFull):
                self.services.audit.enqueue(
                    self.recorder.event(
                        "session.end", "info", reason=reason, data={"statements": self.session.statements}
                    )
                )
            self.recorder.ended()

    # -- helpers -----------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.tls.send(data) if self.tls is not None else data)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
