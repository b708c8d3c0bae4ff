"""Startup-phase messages (no type byte): StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.

Each starts with a 32-bit code after its length: a protocol version for StartupMessage
(3.0 or 3.2; 3.2 lets cancel keys be up to 256 bytes), or one of the magic request codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.codec import BytesLike, Reader, Writer

PROTOCOL_3_0 = 3 << 16
PROTOCOL_3_2 = (3 << 16) | 2
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
MIN_CANCEL_KEY = 4
MAX_CANCEL_KEY = 256


def protocol_version(major: int, minor: int) -> int:
    """The 32-bit protocol version code for ``major.minor``."""
    return (major << 16) | minor


def version_text(code: int) -> str:
    """``"3.2"`` for the code of protocol 3.2."""
    return f"{code >> 16}.{code & 0xFFFF}"


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """The client's first real message: protocol version and parameters (user, database, ...)."""

    parameters: dict[str, str] = field(default_factory=dict)
    protocol: int = PROTOCOL_3_0

    @property
    def user(self) -> str | None:
        """The ``user`` parameter (required by PostgreSQL)."""
        return self.parameters.get("user")

    @property
    def database(self) -> str | None:
        """The ``database`` parameter, defaulting to the user name as PostgreSQL does."""
        return self.parameters.get("database") or self.user

    @property
    def application_name(self) -> str | None:
        """The ``application_name`` parameter."""
        return self.parameters.get("application_name")

    @property
    def options(self) -> str | None:
        """The ``options`` parameter (command-line options for the backend)."""
        return self.parameters.get("options")

    @property
    def protocol_options(self) -> dict[str, str]:
        """Protocol extension parameters (names starting with ``_pq_.``)."""
        return {k: v for k, v in self.parameters.items() if k.startswith("_pq_.")}

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().int32(self.protocol)
        for name, value in self.parameters.items():
            if not name:
                raise ValueError("a startup parameter name cannot be empty")
            writer.cstring(name).cstring(value)
        return writer.byte(0).untyped()

    @classmethod
    def decode(cls, payload: BytesLike) -> StartupMessage:
        """Parse the payload (after the length)."""
        reader = Reader(payload, "StartupMessage")
        protocol = reader.int32()
        parameters: dict[str, str] = {}
        while True:
            name = reader.cstring()
            if not name:
                break
            if name in parameters:
                raise ProtocolError(f"StartupMessage: parameter {name!r} given twice")
            parameters[name] = reader.cstring()
        reader.finish()
        return cls(parameters, protocol)


@dataclass(frozen=True, slots=True)
class SSLRequest:
    """The client asks for TLS; the answer is one byte, ``S`` or ``N``."""

    CODE: ClassVar[int] = SSL_REQUEST_CODE

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(self.CODE).untyped()


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    """The client asks for GSSAPI encryption; the answer is one byte, ``G`` or ``N``."""

    CODE: ClassVar[int] = GSSENC_REQUEST_CODE

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(self.CODE).untyped()


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Cancel the running query of backend ``process_id``; the key is 4 bytes (3.0) or up to 256 (3.2)."""

    process_id: int
    secret_key: bytes = field(repr=False)

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(CANCEL_REQUEST_CODE).int32(self.process_id).raw(self.secret_key).untyped()

    @classmethod
    def decode(cls, payload: BytesLike) -> CancelRequest:
        """Parse the payload (after the length)."""
        reader = Reader(payload, "CancelRequest")
        reader.int32()
        process_id = reader.int32()
        return cls(process_id, check_cancel_key(reader.rest(), "CancelRequest"))


def check_cancel_key(key: bytes, what: str) -> bytes:
    """The key if its length is allowed (4 to 256 bytes), else :class:`ProtocolError`."""
    if not MIN_CANCEL_KEY <= len(key) <= MAX_CANCEL_KEY:
        raise ProtocolError(f"{what}: cancel key of {len(key)} bytes (must be 4 to 256)")
    return key


StartupPhaseMessage = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest


def decode_startup(payload: BytesLike) -> StartupPhaseMessage:
    """Decode a startup-phase message body by its leading code."""
    code = Reader(payload, "startup message").int32()
    if code in {SSL_REQUEST_CODE, GSSENC_REQUEST_CODE}:
        if len(payload) != 4:
            raise ProtocolError("SSLRequest/GSSENCRequest: unexpected trailing bytes")
        return SSLRequest() if code == SSL_REQUEST_CODE else GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        return CancelRequest.decode(payload)
    return StartupMessage.decode(payload)
