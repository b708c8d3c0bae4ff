"""The client side of the gateway's login, as a pure state machine: bytes and decisions in, actions out.

The driver feeds what the client sends to :meth:`ClientHandshake.receive` and carries
out the returned :mod:`~sqlgate.pgwire.actions` in order. Decisions stay with the
driver: after :class:`StartupReceived` it calls :meth:`request_password` or
:meth:`fail`; after :class:`PasswordReceived` (the token) it calls :meth:`succeed` or
:meth:`fail`. The machine itself refuses what no decision could make right: bytes
that break the protocol (:class:`~sqlgate.errors.ProtocolError`), plaintext sent
behind an SSLRequest (CVE-2021-23214), a missing user name, a protocol other than 3.x,
replication connections, and a StartupMessage without TLS when TLS is required.

Once :meth:`succeed` has run, :attr:`framer` holds any bytes the client sent after
its password and is ready for the relay.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from sqlgate.errors import ProtocolError, SqlgateError
from sqlgate.pgwire import errcodes
from sqlgate.pgwire.actions import (
    Action,
    CancelRequested,
    Disconnect,
    PasswordReceived,
    Send,
    StartTls,
    StartupReceived,
)
from sqlgate.pgwire.auth import AuthenticationCleartextPassword, AuthenticationOk, PasswordMessage
from sqlgate.pgwire.backend import BackendKeyData, NegotiateProtocolVersion, ParameterStatus, ReadyForQuery
from sqlgate.pgwire.framing import MAX_MESSAGE_SIZE, Framer
from sqlgate.pgwire.msgtypes import FrontendType
from sqlgate.pgwire.notices import NoticeResponse, error_from, error_response
from sqlgate.pgwire.startup import (
    PROTOCOL_3_0,
    PROTOCOL_3_2,
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
    decode_startup,
    version_text,
)

MAX_AUTH_MESSAGE = 65_536
"""Largest password message accepted (PostgreSQL allows 65,535-byte tokens)."""
_FALSE = frozenset({"false", "off", "no", "0"})


class State(enum.Enum):
    """Where the login stands."""

    STARTUP = "waiting for the startup message"
    TLS = "waiting for the TLS handshake"
    STARTED = "waiting for a decision on the startup message"
    PASSWORD = "waiting for the password"  # noqa: S105 - a state name, not a secret
    AUTHENTICATING = "waiting for a decision on the password"
    DONE = "logged in"
    CLOSED = "closed"


class ClientHandshake:
    """One client connection's login, from its first byte to ReadyForQuery or a FATAL error."""

    def __init__(
        self, *, tls_available: bool, require_tls: bool = False, max_message_size: int = MAX_MESSAGE_SIZE
    ) -> None:
        self.tls_available = tls_available
        self.require_tls = require_tls
        self.tls_active = False
        self.state = State.STARTUP
        self.startup: StartupMessage | None = None
        self.protocol = PROTOCOL_3_0
        self.framer = Framer("frontend", max_size=MAX_AUTH_MESSAGE)
        self._max_message_size = max_message_size
        self._unsupported_options: tuple[str, ...] = ()
        self._asked = {"ssl": False, "gss": False}

    # -- events ------------------------------------------------------------

    def receive(self, data: bytes) -> list[Action]:
        """Bytes from the client; returns what to do next."""
        if self.state in (State.DONE, State.CLOSED):
            raise ProtocolError(f"the handshake is over ({self.state.value}); hand the stream to the relay")
        self.framer.feed(data)
        actions: list[Action] = []
        while self.state in (State.STARTUP, State.PASSWORD) and not self._ends(actions):
            step = self._startup_step() if self.state is State.STARTUP else self._password_step()
            if step is None:
                break
            actions += step
        if self.framer.buffered > MAX_AUTH_MESSAGE + 5:
            raise ProtocolError("client sent too much data before logging in")
        return actions

    def tls_started(self) -> None:
        """The driver finished the TLS handshake; the client now sends its startup message again."""
        if self.state is not State.TLS:
            raise RuntimeError(f"tls_started() while {self.state.value}")
        self.tls_active = True
        self.state = State.STARTUP

    # -- decisions ---------------------------------------------------------

    def request_password(self) -> list[Action]:
        """Ask the client for its password in clear text (inside TLS or on loopback only)."""
        self._expect(State.STARTED)
        self.state = State.PASSWORD
        negotiate = b""
        if self.startup is not None and (self.startup.protocol != self.protocol or self._unsupported_options):
            negotiate = NegotiateProtocolVersion(self.protocol & 0xFFFF, self._unsupported_options).encode()
        actions: list[Action] = [Send(negotiate + AuthenticationCleartextPassword().encode())]
        return actions + (self._password_step() or [])  # a password the client sent ahead of the request

    def succeed(
        self,
        parameters: Mapping[str, str],
        backend_key: BackendKeyData,
        notices: Iterable[NoticeResponse] = (),
    ) -> list[Action]:
        """Log the client in: AuthenticationOk, notices, ParameterStatus each, BackendKeyData, ReadyForQuery."""
        self._expect(State.AUTHENTICATING)
        if self.protocol == PROTOCOL_3_0 and len(backend_key.secret_key) != 4:
            raise ValueError("a protocol 3.0 client needs a 4-byte cancel key")
        parts = [AuthenticationOk().encode()]
        parts += [notice.encode() for notice in notices]
        parts += [ParameterStatus(name, value).encode() for name, value in parameters.items()]
        parts += [backend_key.encode(), ReadyForQuery("I").encode()]
        self.state = State.DONE
        self.framer.max_size = self._max_message_size
        return [Send(b"".join(parts))]

    def fail(self, sqlstate: str, message: str, *, detail: str | None = None, hint: str | None = None) -> list[Action]:
        """Refuse the login with a FATAL error and close."""
        self._expect(State.STARTED, State.PASSWORD, State.AUTHENTICATING)
        error = error_response(sqlstate, message, severity="FATAL", detail=detail, hint=hint)
        return self._refuse(error.encode())

    def fail_with(self, exc: SqlgateError) -> list[Action]:
        """Refuse the login with ``exc``'s SQLSTATE, message and hint."""
        self._expect(State.STARTED, State.PASSWORD, State.AUTHENTICATING)
        return self._refuse(error_from(exc, severity="FATAL").encode())

    # -- steps -------------------------------------------------------------

    def _startup_step(self) -> list[Action] | None:
        frame = self.framer.next_startup()
        if frame is None:
            return None
        message = decode_startup(frame.payload)
        if isinstance(message, SSLRequest | GSSENCRequest):
            return self._encryption_request(message)
        if isinstance(message, CancelRequest):
            self.state = State.CLOSED
            return [CancelRequested(message.process_id, message.secret_key), Disconnect()]
        return self._startup_message(message)

    def _encryption_request(self, message: SSLRequest | GSSENCRequest) -> list[Action]:
        kind = "ssl" if isinstance(message, SSLRequest) else "gss"
        if self.tls_active or self._asked[kind]:
            raise ProtocolError(f"{type(message).__name__} sent twice or inside TLS")
        self._asked[kind] = True
        if kind == "gss" or not self.tls_available:
            return [Send(b"N")]
        if self.framer.buffered:
            raise ProtocolError("client sent data after SSLRequest before the TLS handshake")
        self.state = State.TLS
        return [StartTls()]

    def _startup_message(self, message: StartupMessage) -> list[Action]:
        self.startup = message
        major, minor = message.protocol >> 16, message.protocol & 0xFFFF
        if major != 3 or minor == 1:
            return self._refuse_early(
                errcodes.FEATURE_NOT_SUPPORTED,
                f"unsupported frontend protocol {version_text(message.protocol)}: sqlgate supports 3.0 and 3.2",
            )
        self.protocol = PROTOCOL_3_0 if minor == 0 else PROTOCOL_3_2
        self._unsupported_options = tuple(message.protocol_options)
        if self.require_tls and not self.tls_active:
            return self._refuse_early(
                errcodes.INVALID_AUTHORIZATION_SPECIFICATION,
                "sqlgate requires TLS on this listener",
                hint="connect with sslmode=require (or verify-full)",
            )
        if not message.user:
            return self._refuse_early(
                errcodes.INVALID_AUTHORIZATION_SPECIFICATION, "no PostgreSQL user name specified in startup packet"
            )
        if message.parameters.get("replication", "false").lower() not in _FALSE:
            return self._refuse_early(
                errcodes.FEATURE_NOT_SUPPORTED, "replication connections are not supported by sqlgate"
            )
        self.state = State.STARTED
        return [StartupReceived(message)]

    def _password_step(self) -> list[Action] | None:
        frame = self.framer.next_frame()
        if frame is None:
            return None
        if frame.type == FrontendType.TERMINATE:
            self.state = State.CLOSED
            return [Disconnect()]
        if frame.type != FrontendType.AUTH_RESPONSE:
            raise ProtocolError(f"expected a password message, got message type {chr(frame.type)!r}")
        self.state = State.AUTHENTICATING
        return [PasswordReceived(PasswordMessage.decode(frame.payload).password)]

    # -- helpers -----------------------------------------------------------

    def _refuse_early(self, sqlstate: str, message: str, *, hint: str | None = None) -> list[Action]:
        return self._refuse(error_response(sqlstate, message, severity="FATAL", hint=hint).encode())

    def _refuse(self, error: bytes) -> list[Action]:
        self.state = State.CLOSED
        return [Send(error), Disconnect()]

    def _expect(self, *states: State) -> None:
        if self.state not in states:
            raise RuntimeError(f"not allowed while {self.state.value}")

    @staticmethod
    def _ends(actions: list[Action]) -> bool:
        return bool(actions) and isinstance(actions[-1], Disconnect)
