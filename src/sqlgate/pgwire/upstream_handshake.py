"""The gateway's login to the target server, as a pure state machine: server bytes in, bytes to send out.

:meth:`UpstreamHandshake.start` gives the StartupMessage; each chunk from the server
goes to :meth:`UpstreamHandshake.receive`, which returns what to send back. The
machine answers SCRAM-SHA-256 (channel-bound when given the server certificate and
offered ``-PLUS``), MD5 and cleartext requests, as far as ``UpstreamLogin.methods``
allows; it collects ParameterStatus, BackendKeyData and notices until ReadyForQuery
(:attr:`done`). An ErrorResponse raises :class:`UpstreamRefused` with the server's
SQLSTATE; bytes that break the protocol raise :class:`~sqlgate.errors.ProtocolError`.

For TLS the driver first sends :data:`SSL_REQUEST` and reads one byte, checked by
:func:`server_accepts_tls`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.pgwire.actions import Send
from sqlgate.pgwire.auth import (
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationRequest,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    PasswordMessage,
    SASLInitialResponse,
    SASLResponse,
    decode_authentication,
)
from sqlgate.pgwire.backend import (
    BackendKeyData,
    NegotiateProtocolVersion,
    ParameterStatus,
    ReadyForQuery,
    decode_backend,
)
from sqlgate.pgwire.framing import MAX_MESSAGE_SIZE, Frame, Framer
from sqlgate.pgwire.notices import ErrorResponse, NoticeResponse
from sqlgate.pgwire.scram import ScramClient, ScramError
from sqlgate.pgwire.startup import PROTOCOL_3_0, SSLRequest, StartupMessage, protocol_version

SSL_REQUEST = SSLRequest().encode()
ALL_METHODS = frozenset({"scram-sha-256", "md5", "password"})
MAX_LOGIN_MESSAGE = 1 << 20
"""Largest message accepted before ReadyForQuery."""


class UpstreamRefused(UpstreamError):
    """The server answered the login with an ErrorResponse; ``error`` holds every field."""

    def __init__(self, error: ErrorResponse) -> None:
        super().__init__(f"upstream server refused the login: {error.message} (SQLSTATE {error.sqlstate})")
        self.error = error

    @property
    def server_sqlstate(self) -> str:
        """The SQLSTATE the server sent (28P01 for a wrong password, 53300 for too many connections, ...)."""
        return self.error.sqlstate


def server_accepts_tls(answer: bytes) -> bool:
    """Read the one-byte answer to SSLRequest: True for ``S``, False for ``N``, else :class:`ProtocolError`."""
    if answer == b"S":
        return True
    if answer == b"N":
        return False
    raise ProtocolError(f"unexpected answer to SSLRequest: {answer[:1]!r}")


@dataclass(frozen=True, slots=True)
class UpstreamLogin:
    """Who logs in where, and how the server may ask for the password."""

    user: str
    database: str
    password: str = field(repr=False)
    parameters: Mapping[str, str] = field(default_factory=dict)
    """Extra startup parameters (application_name, options, client_encoding, ...)."""
    protocol: int = PROTOCOL_3_0
    server_certificate: bytes | None = field(default=None, repr=False)
    """The server's TLS certificate (DER) when the connection uses TLS; enables channel binding."""
    methods: frozenset[str] = ALL_METHODS
    """Password methods the server may ask for: scram-sha-256, md5, password (cleartext)."""


class UpstreamHandshake:
    """One login to the target server, up to its first ReadyForQuery."""

    def __init__(self, login: UpstreamLogin) -> None:
        self.login = login
        self.framer = Framer("backend", max_size=MAX_LOGIN_MESSAGE)
        self.parameters: dict[str, str] = {}
        self.backend_key: BackendKeyData | None = None
        self.notices: list[NoticeResponse] = []
        self.protocol = login.protocol
        self.transaction_status = ""
        self.done = False
        self._authenticated = False
        self._scram: ScramClient | None = None

    def start(self) -> bytes:
        """The StartupMessage to send first."""
        parameters = {**self.login.parameters, "user": self.login.user, "database": self.login.database}
        return StartupMessage(parameters, self.login.protocol).encode()

    def receive(self, data: bytes) -> list[Send]:
        """Bytes from the server; returns what to send back. Check :attr:`done` after each call."""
        if self.done:
            raise ProtocolError("login already finished; hand the stream to the relay")
        self.framer.feed(data)
        replies: list[Send] = []
        while not self.done and (frame := self.framer.next_frame()) is not None:
            reply = self._handle(frame)
            if reply:
                replies.append(Send(reply))
        return replies

    def _handle(self, frame: Frame) -> bytes:
        kind = chr(frame.type)
        if kind == "E":
            raise UpstreamRefused(ErrorResponse.decode(frame.payload))
        if kind == "N":
            self.notices.append(NoticeResponse.decode(frame.payload))
            return b""
        if not self._authenticated:
            if kind == "R":
                return self._authenticate(decode_authentication(frame.payload))
            if kind == "v":
                return self._negotiate(NegotiateProtocolVersion.decode(frame.payload))
        elif kind in "SKZ":
            self._session_message(decode_backend(frame.type, frame.payload))
            return b""
        raise ProtocolError(f"unexpected message type {kind!r} from the server during login")

    def _authenticate(self, request: AuthenticationRequest) -> bytes:
        if isinstance(request, AuthenticationOk):
            if self._scram is not None and not self._scram.done:
                raise ScramError("the server ended SCRAM without proving it knows the password")
            self._authenticated = True
            return b""
        if isinstance(request, AuthenticationSASL):
            return self._start_scram(request.mechanisms)
        if isinstance(request, AuthenticationSASLContinue):
            return SASLResponse(self._scram_step().handle_server_first(request.data)).encode()
        if isinstance(request, AuthenticationSASLFinal):
            self._scram_step().verify_server_final(request.data)
            return b""
        if isinstance(request, AuthenticationMD5Password):
            self._allow("md5")
            return PasswordMessage(md5_password(self.login.user, self.login.password, request.salt)).encode()
        if isinstance(request, AuthenticationCleartextPassword):
            self._allow("password")
            return PasswordMessage(self.login.password).encode()
        raise UpstreamError(f"the server asks for {type(request).__name__}, which sqlgate does not support")

    def _start_scram(self, mechanisms: tuple[str, ...]) -> bytes:
        self._allow("scram-sha-256")
        if self._scram is not None:
            raise ProtocolError("the server started SASL twice")
        self._scram = ScramClient(
            self.login.user,
            self.login.password,
            server_certificate=self.login.server_certificate,
            mechanisms=mechanisms,
        )
        return SASLInitialResponse(self._scram.mechanism, self._scram.first_message()).encode()

    def _scram_step(self) -> ScramClient:
        if self._scram is None:
            raise ProtocolError("SASL data from the server before AuthenticationSASL")
        return self._scram

    def _allow(self, method: str) -> None:
        if method not in self.login.methods:
            raise UpstreamError(f"the server asks for {method} authentication, which this connection does not allow")

    def _negotiate(self, message: NegotiateProtocolVersion) -> bytes:
        minor = self.login.protocol & 0xFFFF
        if message.newest_minor > minor:
            raise ProtocolError("NegotiateProtocolVersion offers a newer protocol than requested")
        self.protocol = protocol_version(3, message.newest_minor)
        return b""

    def _session_message(self, message: object) -> None:
        if isinstance(message, ParameterStatus):
            self.parameters[message.name] = message.value
        elif isinstance(message, BackendKeyData):
            if self.protocol == PROTOCOL_3_0 and len(message.secret_key) != 4:
                raise ProtocolError("BackendKeyData: protocol 3.0 cancel keys are 4 bytes")
            self.backend_key = message
        elif isinstance(message, ReadyForQuery):
            self.transaction_status = message.status
            self.framer.max_size = MAX_MESSAGE_SIZE
            self.done = True


def md5_password(user: str, password: str, salt: bytes) -> str:
    """PostgreSQL's MD5 response: ``"md5" + md5(md5(password + user) + salt)``."""
    inner = hashlib.md5((password + user).encode(), usedforsecurity=False).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt, usedforsecurity=False).hexdigest()
