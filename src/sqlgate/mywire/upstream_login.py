"""The gateway's login to a database server, as a client: greeting in, TLS, response, auth switch, OK.

The gateway logs in with the lease's login and password using the plugin the
server asks for: ``mysql_native_password`` or ``caching_sha2_password`` (its full
authentication sends the password over TLS, or RSA-encrypted with the server's
public key without TLS), and ``mysql_clear_password`` over TLS only. The
capabilities asked for are the client's, less those the server lacks, plus
``CLIENT_SSL`` when TLS is used and ``LONG_PASSWORD`` (plain MySQL protocol, no
MariaDB extensions).
"""

from __future__ import annotations

from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.mywire.actions import Action, LoggedIn, Refused, Send, StartTls
from sqlgate.mywire.auth import (
    FAST_AUTH_SUCCESS,
    PERFORM_FULL_AUTH,
    REQUEST_PUBLIC_KEY,
    response_for,
    rsa_encrypted_password,
)
from sqlgate.mywire.constants import (
    AUTH_MORE_DATA,
    AUTH_SWITCH,
    CACHING_SHA2_PASSWORD,
    ERR_HEADER,
    NATIVE_PASSWORD,
    OK_HEADER,
    Capability,
)
from sqlgate.mywire.handshake import AuthMoreData, AuthSwitchRequest, HandshakeResponse, HandshakeV10, SslRequest
from sqlgate.mywire.packets import PacketReader, encode
from sqlgate.mywire.results import Err, Ok

REQUIRED = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
MAX_ROUNDS = 8


class UpstreamLogin:
    """One login to a server: feed it the server's bytes; it answers with actions."""

    def __init__(  # noqa: PLR0913 - a login's parts, named
        self,
        *,
        user: str,
        password: str,
        database: str | None,
        capabilities: int,
        charset: int,
        attributes: dict[str, str] | None = None,
        tls: str = "disable",
    ) -> None:
        self.user = user
        self._password = password
        self.database = database
        self.wanted = capabilities
        self.charset = charset
        self.attributes = attributes or {}
        self.tls_mode = tls
        self.tls_active = False
        self.reader = PacketReader(max_size=1 << 20, what="database server")
        self.handshake: HandshakeV10 | None = None
        self.capabilities = 0
        self.plugin = ""
        self.scramble = b""
        self.seq = 0
        self.rounds = 0
        self.state = "greeting"

    def receive(self, data: bytes) -> list[Action]:
        """Bytes from the server."""
        self.reader.feed(data)
        actions: list[Action] = []
        while self.state not in {"tls", "done"} and (packet := self.reader.next_packet()) is not None:
            self.seq = packet.next_seq
            actions += self._packet(packet.payload)
        return actions

    def _packet(self, payload: bytes) -> list[Action]:
        if self.state == "greeting":
            if payload[:1] == bytes((ERR_HEADER,)):
                self.state = "done"
                return [Refused(Err.decode(payload))]
            return self._greeting(HandshakeV10.decode(payload))
        self.rounds += 1
        if self.rounds > MAX_ROUNDS:
            raise ProtocolError("the database server's login took too many rounds")
        first = payload[0] if payload else -1
        if first == OK_HEADER:
            self.state = "done"
            assert self.handshake is not None
            return [LoggedIn(self.handshake, Ok.decode(payload))]
        if first == ERR_HEADER:
            self.state = "done"
            return [Refused(Err.decode(payload))]
        if first == AUTH_SWITCH:
            switch = AuthSwitchRequest.decode(payload)
            self.plugin, self.scramble = switch.plugin, switch.data.rstrip(b"\x00") or self.scramble
            return self._send(response_for(self.plugin, self._password, self.scramble, tls=self.tls_active))
        if first == AUTH_MORE_DATA:
            return self._more_data(AuthMoreData.decode(payload).data)
        raise ProtocolError(f"the database server sent an unexpected login packet (0x{first & 0xFF:02x})")

    def _greeting(self, handshake: HandshakeV10) -> list[Action]:
        self.handshake = handshake
        missing = REQUIRED & ~handshake.capabilities
        if missing:
            raise UpstreamError(f"the database server lacks protocol features sqlgate needs (0x{missing:x})")
        use_tls = self.tls_mode != "disable" and bool(handshake.capabilities & Capability.SSL)
        if self.tls_mode in {"require", "verify-ca", "verify-full"} and not use_tls:
            raise UpstreamError("the database server does not offer TLS, and the database's settings require it")
        caps = (self.wanted | REQUIRED | Capability.LONG_PASSWORD) & handshake.capabilities
        caps &= ~(Capability.SSL | Capability.COMPRESS | Capability.ZSTD_COMPRESSION)
        if use_tls:
            caps |= Capability.SSL
        if self.database:
            caps |= Capability.CONNECT_WITH_DB
        self.capabilities = caps
        self.plugin = handshake.auth_plugin or NATIVE_PASSWORD
        self.scramble = handshake.scramble
        if use_tls:
            self.state = "tls"
            request = SslRequest(caps, charset=self.charset).encode()
            packet = encode(request, self.seq)
            self.seq = (self.seq + 1) & 0xFF
            return [Send(packet), StartTls()]
        return self._response()

    def tls_started(self) -> list[Action]:
        """The TLS handshake with the server finished: send the login response."""
        self.tls_active = True
        return self._response()

    def _response(self) -> list[Action]:
        self.state = "auth"
        plugin = self.plugin if self.plugin in {NATIVE_PASSWORD, CACHING_SHA2_PASSWORD} else NATIVE_PASSWORD
        self.plugin = plugin
        auth = response_for(plugin, self._password, self.scramble, tls=self.tls_active)
        response = HandshakeResponse(
            capabilities=self.capabilities,
            user=self.user,
            auth_response=auth,
            database=self.database,
            auth_plugin=plugin,
            attributes=self.attributes,
            charset=self.charset,
        )
        return self._send(response.encode())

    def _more_data(self, data: bytes) -> list[Action]:
        if self.plugin != CACHING_SHA2_PASSWORD:
            raise ProtocolError(f"the database server sent auth data for plugin {self.plugin}")
        if data == FAST_AUTH_SUCCESS:
            return []
        if data == PERFORM_FULL_AUTH:
            if self.tls_active:
                return self._send(self._password.encode() + b"\x00")
            return self._send(REQUEST_PUBLIC_KEY)
        if data.startswith(b"-----BEGIN"):
            return self._send(rsa_encrypted_password(self._password, self.scramble, data))
        raise ProtocolError("the database server sent caching_sha2_password data sqlgate does not understand")

    def _send(self, payload: bytes) -> list[Action]:
        packet = encode(payload, self.seq)
        self.seq = (self.seq + 1) & 0xFF
        return [Send(packet)]

    def take_buffered(self) -> bytes:
        """Bytes the server sent after its OK (none, normally)."""
        return self.reader.take_buffered()
