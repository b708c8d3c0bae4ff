"""The connection phase's packets: HandshakeV10, SSLRequest, HandshakeResponse41, auth switch and more data.

Each packet is a dataclass with ``decode(payload)`` and ``encode()``; secrets
(``auth_response``, plugin data) never appear in a repr. MariaDB's extended
capabilities travel in the last 4 bytes of the reserved fields when the
``LONG_PASSWORD`` ("CLIENT_MYSQL") bit is clear; sqlgate always sets that bit,
so the peers speak plain MySQL protocol with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlgate.errors import ProtocolError
from sqlgate.mywire.buffer import Reader, cstring, int1, int2, int4, lenenc_bytes, lenenc_int
from sqlgate.mywire.constants import AUTH_MORE_DATA, AUTH_SWITCH, Capability

PROTOCOL_VERSION = 10
SSL_REQUEST_SIZE = 32
DEFAULT_CHARSET = 45  # utf8mb4_general_ci
MAX_CONNECT_ATTRS = 64 * 1024


@dataclass(frozen=True, slots=True)
class HandshakeV10:
    """The server's first packet: version, connection id, scramble, capabilities, default auth plugin."""

    server_version: str
    connection_id: int
    scramble: bytes = field(repr=False)
    capabilities: int
    charset: int = DEFAULT_CHARSET
    status: int = 0x0002
    auth_plugin: str = ""

    @classmethod
    def decode(cls, payload: bytes) -> HandshakeV10:
        """Decode the server's greeting; an ERR packet or another version is refused with the server's words."""
        reader = Reader(payload, "server handshake")
        version = reader.int1()
        if version == 0xFF:
            raise ProtocolError(f"the server refused the connection: {payload[3:].decode('utf-8', 'replace')}")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"the server speaks protocol version {version}, not 10")
        server_version = reader.cstring().decode("utf-8", "replace")
        connection_id = reader.int4()
        scramble = reader.take(8)
        reader.int1()
        capabilities = reader.int2()
        charset, status = DEFAULT_CHARSET, 0
        data_length = 0
        if reader.remaining:
            charset = reader.int1()
            status = reader.int2()
            capabilities |= reader.int2() << 16
            data_length = reader.int1()
            reader.take(10)
        if capabilities & Capability.SECURE_CONNECTION:
            part = reader.take(max(13, data_length - 8))
            scramble += part[:-1] if part.endswith(b"\x00") else part
        plugin = ""
        if capabilities & Capability.PLUGIN_AUTH:
            plugin = reader.cstring_or_rest().decode("ascii", "replace")
        return cls(server_version, connection_id, scramble, capabilities, charset, status, plugin)

    def encode(self) -> bytes:
        """The payload (the scramble is 20 bytes, sent as 8 + 12 and a NUL)."""
        scramble = self.scramble
        return (
            int1(PROTOCOL_VERSION)
            + cstring(self.server_version)
            + int4(self.connection_id)
            + scramble[:8]
            + b"\x00"
            + int2(self.capabilities & 0xFFFF)
            + int1(self.charset)
            + int2(self.status)
            + int2(self.capabilities >> 16)
            + int1(len(scramble) + 1 if self.capabilities & Capability.PLUGIN_AUTH else 0)
            + b"\x00" * 10
            + scramble[8:]
            + b"\x00"
            + (cstring(self.auth_plugin) if self.capabilities & Capability.PLUGIN_AUTH else b"")
        )


@dataclass(frozen=True, slots=True)
class SslRequest:
    """The client asks for TLS before it says who it is (32 bytes)."""

    capabilities: int
    max_packet: int = 1 << 24
    charset: int = DEFAULT_CHARSET

    @classmethod
    def decode(cls, payload: bytes) -> SslRequest:
        """Decode an SSLRequest."""
        reader = Reader(payload, "SSL request")
        capabilities, max_packet, charset = reader.int4(), reader.int4(), reader.int1()
        return cls(capabilities, max_packet, charset)

    def encode(self) -> bytes:
        """The payload."""
        return int4(self.capabilities) + int4(self.max_packet) + int1(self.charset) + b"\x00" * 23


def is_ssl_request(payload: bytes) -> bool:
    """True for an SSLRequest (a 32-byte response with the SSL flag) rather than a HandshakeResponse41."""
    if len(payload) != SSL_REQUEST_SIZE:
        return False
    return bool(int.from_bytes(payload[:4], "little") & Capability.SSL)


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """HandshakeResponse41: the client's capabilities, user, auth response, database, plugin, attributes."""

    capabilities: int
    user: str
    auth_response: bytes = field(repr=False)
    database: str | None = None
    auth_plugin: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    max_packet: int = 1 << 24
    charset: int = DEFAULT_CHARSET

    @classmethod
    def decode(cls, payload: bytes) -> HandshakeResponse:
        """Decode a HandshakeResponse41 (protocol 4.1 is required)."""
        reader = Reader(payload, "handshake response")
        capabilities = reader.int4()
        if not capabilities & Capability.PROTOCOL_41:
            raise ProtocolError("the client does not speak protocol 4.1 (CLIENT_PROTOCOL_41)")
        max_packet, charset = reader.int4(), reader.int1()
        reader.take(23)
        user = reader.cstring().decode("utf-8", "replace")
        if capabilities & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = reader.lenenc_bytes() or b""
        elif capabilities & Capability.SECURE_CONNECTION:
            auth = reader.take(reader.int1())
        else:
            auth = reader.cstring()
        database = None
        if capabilities & Capability.CONNECT_WITH_DB and reader.remaining:
            database = reader.cstring_or_rest().decode("utf-8", "replace")
        plugin = ""
        if capabilities & Capability.PLUGIN_AUTH and reader.remaining:
            plugin = reader.cstring_or_rest().decode("ascii", "replace")
        attributes = {}
        if capabilities & Capability.CONNECT_ATTRS and reader.remaining:
            attributes = _attributes(reader)
        return cls(capabilities, user, auth, database, plugin, attributes, max_packet, charset)

    def encode(self) -> bytes:
        """The payload, with the auth response length-encoded when the capabilities allow it."""
        caps = self.capabilities
        out = [int4(caps), int4(self.max_packet), int1(self.charset), b"\x00" * 23, cstring(self.user)]
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            out.append(lenenc_bytes(self.auth_response))
        elif caps & Capability.SECURE_CONNECTION:
            if len(self.auth_response) > 255:
                raise ValueError("an auth response over 255 bytes needs CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA")
            out.append(int1(len(self.auth_response)) + self.auth_response)
        else:
            out.append(cstring(self.auth_response))
        if caps & Capability.CONNECT_WITH_DB:
            out.append(cstring(self.database or ""))
        if caps & Capability.PLUGIN_AUTH:
            out.append(cstring(self.auth_plugin))
        if caps & Capability.CONNECT_ATTRS:
            body = b"".join(lenenc_bytes(k.encode()) + lenenc_bytes(v.encode()) for k, v in self.attributes.items())
            out.append(lenenc_int(len(body)) + body)
        return b"".join(out)


def _attributes(reader: Reader) -> dict[str, str]:
    total = reader.lenenc_int() or 0
    if total > MAX_CONNECT_ATTRS:
        raise ProtocolError(f"handshake response: {total} bytes of connection attributes")
    inner = Reader(reader.take(total), "connection attributes")
    found: dict[str, str] = {}
    while inner.remaining:
        key = inner.lenenc_str()
        found[key] = inner.lenenc_str()
    return found


@dataclass(frozen=True, slots=True)
class AuthSwitchRequest:
    """The server asks the client to authenticate again with another plugin (header 0xFE)."""

    plugin: str
    data: bytes = field(default=b"", repr=False)

    @classmethod
    def decode(cls, payload: bytes) -> AuthSwitchRequest:
        """Decode an auth switch request (an old-style one, the single byte 0xFE, means mysql_old_password)."""
        reader = Reader(payload, "auth switch request")
        if reader.int1() != AUTH_SWITCH:
            raise ProtocolError("auth switch request: header is not 0xFE")
        if not reader.remaining:
            return cls("mysql_old_password")
        plugin = reader.cstring_or_rest().decode("ascii", "replace")
        return cls(plugin, reader.rest())

    def encode(self) -> bytes:
        """The payload (plugin data is NUL-terminated, as servers send the scramble)."""
        data = self.data + b"\x00" if self.data and not self.data.endswith(b"\x00") else self.data
        return b"\xfe" + cstring(self.plugin) + data


@dataclass(frozen=True, slots=True)
class AuthMoreData:
    """Extra data of the auth exchange (header 0x01): caching_sha2_password's status byte or public key."""

    data: bytes = field(repr=False)

    @classmethod
    def decode(cls, payload: bytes) -> AuthMoreData:
        """Decode an AuthMoreData packet."""
        if not payload or payload[0] != AUTH_MORE_DATA:
            raise ProtocolError("auth more data: header is not 0x01")
        return cls(payload[1:])

    def encode(self) -> bytes:
        """The payload."""
        return b"\x01" + self.data
