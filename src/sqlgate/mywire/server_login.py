"""The gateway's side of a client's login: greeting, optional TLS, who the client is, its token in clear text.

The greeting names ``mysql_native_password`` with a random scramble, so a client's
first answer never holds its password; only once the connection is protected (TLS,
or a loopback client) does the gateway ask, with an auth switch to
``mysql_clear_password``, for the password, which for sqlgate is the identity token
(as RDS IAM authentication works). A client that answers the greeting with a
clear-text password at once is accepted too, on the same conditions.

Sequence ids: the greeting is 0, the client's answer (or SSLRequest) 1, and
each packet of the exchange after that counts on from the last one received.
"""

from __future__ import annotations

import secrets

from sqlgate.errors import ProtocolError
from sqlgate.mywire.actions import Action, Disconnect, LoginReceived, PasswordReceived, Send, StartTls
from sqlgate.mywire.constants import CLEAR_PASSWORD, NATIVE_PASSWORD, Capability, Status
from sqlgate.mywire.handshake import (
    AuthSwitchRequest,
    HandshakeResponse,
    HandshakeV10,
    SslRequest,
    is_ssl_request,
)
from sqlgate.mywire.packets import PacketReader, encode
from sqlgate.mywire.results import Err, Ok

SERVER_CAPABILITIES = (
    Capability.LONG_PASSWORD
    | Capability.FOUND_ROWS
    | Capability.LONG_FLAG
    | Capability.CONNECT_WITH_DB
    | Capability.NO_SCHEMA
    | Capability.ODBC
    | Capability.LOCAL_FILES
    | Capability.IGNORE_SPACE
    | Capability.PROTOCOL_41
    | Capability.INTERACTIVE
    | Capability.IGNORE_SIGPIPE
    | Capability.TRANSACTIONS
    | Capability.RESERVED
    | Capability.SECURE_CONNECTION
    | Capability.MULTI_STATEMENTS
    | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS
    | Capability.PLUGIN_AUTH
    | Capability.CONNECT_ATTRS
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CAN_HANDLE_EXPIRED_PASSWORDS
    | Capability.DEPRECATE_EOF
)
"""What the gateway offers clients: no compression, session tracking, query attributes or optional metadata."""
MAX_LOGIN_PACKET = 64 * 1024
MAX_TOKEN_BYTES = 16 * 1024


class ClientLogin:
    """One client's login, as a state machine: bytes in, actions out."""

    def __init__(
        self,
        *,
        connection_id: int,
        server_version: str,
        tls_available: bool,
        require_tls: bool,
        capabilities: int = SERVER_CAPABILITIES,
    ) -> None:
        self.reader = PacketReader(max_size=MAX_LOGIN_PACKET, what="client")
        self.tls_available = tls_available
        self.require_tls = require_tls
        self.tls_active = False
        offered = capabilities | (Capability.SSL if tls_available else 0)
        self.greeting = HandshakeV10(
            server_version=server_version,
            connection_id=connection_id,
            scramble=_scramble(),
            capabilities=offered,
            status=Status.AUTOCOMMIT,
            auth_plugin=NATIVE_PASSWORD,
        )
        self.response: HandshakeResponse | None = None
        self.capabilities = 0
        self.state = "new"
        self.seq = 0

    def start(self) -> list[Action]:
        """The greeting."""
        self.state = "greeted"
        self.seq = 1
        return [Send(encode(self.greeting.encode(), 0))]

    def receive(self, data: bytes) -> list[Action]:
        """Bytes from the client."""
        self.reader.feed(data)
        actions: list[Action] = []
        while self.state in {"greeted", "tls-done", "switched"} and (packet := self.reader.next_packet()) is not None:
            if packet.seq != self.seq:
                raise ProtocolError(f"the client sent sequence id {packet.seq}, expected {self.seq}")
            self.seq = packet.next_seq
            actions += self._packet(packet.payload)
        return actions

    def _packet(self, payload: bytes) -> list[Action]:
        if self.state == "switched":
            self.state = "password"
            return [PasswordReceived(_token(payload))]
        if self.state == "greeted" and is_ssl_request(payload):
            if not self.tls_available:
                raise ProtocolError("the client asked for TLS, which this listener does not offer")
            SslRequest.decode(payload)
            self.state = "tls"  # the TLS handshake may already follow in the buffer: see take_buffered()
            return [StartTls()]
        response = HandshakeResponse.decode(payload)
        self.response = response
        self.capabilities = response.capabilities & self.greeting.capabilities
        self.state = "login"
        return [LoginReceived(response)]

    def tls_started(self) -> None:
        """The TLS handshake finished: the HandshakeResponse comes next, encrypted."""
        self.tls_active = True
        self.state = "tls-done"

    def request_password(self) -> list[Action]:
        """Ask for the token in clear text (the client must have a protected connection; the caller checked)."""
        response = self.response
        assert response is not None
        if response.auth_plugin == CLEAR_PASSWORD and response.auth_response:
            self.state = "password"
            return [PasswordReceived(_token(response.auth_response))]
        self.state = "switched"
        switch = AuthSwitchRequest(CLEAR_PASSWORD, b"")
        packet = encode(switch.encode(), self.seq)
        self.seq = (self.seq + 1) & 0xFF
        return [Send(packet)]

    def succeed(self, status: int = Status.AUTOCOMMIT) -> list[Action]:
        """Tell the client it is logged in."""
        self.state = "done"
        return [Send(encode(Ok(status=status).encode(), self.seq))]

    def fail(self, code: int, sqlstate: str, message: str) -> list[Action]:
        """Refuse the login with an ERR packet and close."""
        self.state = "failed"
        return [Send(encode(Err(code, sqlstate, message).encode(), self.seq)), Disconnect()]

    def take_buffered(self) -> bytes:
        """Bytes the client sent after its login (a pipelining client): the relay's first input."""
        return self.reader.take_buffered()


def _scramble() -> bytes:
    """20 random bytes without NUL (the greeting's scramble is NUL-terminated on the wire)."""
    return bytes(1 + b % 255 for b in secrets.token_bytes(20))


def _token(data: bytes) -> str:
    raw = data[:-1] if data.endswith(b"\x00") else data
    if len(raw) > MAX_TOKEN_BYTES:
        raise ProtocolError(f"the password is over {MAX_TOKEN_BYTES} bytes")
    return raw.decode("utf-8", "replace")
