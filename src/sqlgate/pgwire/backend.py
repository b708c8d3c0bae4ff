"""Typed messages a server sends: session state and notifications, and the decoder for every server message.

Each message is a frozen dataclass with ``encode() -> bytes`` and ``decode(payload)``.
:func:`decode_backend` picks the class by type byte among these, the results
(:mod:`sqlgate.pgwire.results`), COPY (:mod:`sqlgate.pgwire.copy`), authentication
requests (:mod:`sqlgate.pgwire.auth`), and errors and notices (:mod:`sqlgate.pgwire.notices`).
The result classes are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.auth import AUTH, AuthenticationRequest, decode_authentication
from sqlgate.pgwire.codec import BytesLike, Reader, Writer
from sqlgate.pgwire.copy import CopyBothResponse, CopyData, CopyDone, CopyInResponse, CopyOutResponse
from sqlgate.pgwire.notices import ErrorResponse, NoticeResponse
from sqlgate.pgwire.results import (
    BindComplete,
    CloseComplete,
    CommandComplete,
    DataRow,
    EmptyQueryResponse,
    FieldDescription,
    NoData,
    ParameterDescription,
    ParseComplete,
    PortalSuspended,
    RowDescription,
    data_row_values,
)
from sqlgate.pgwire.startup import check_cancel_key


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    """A run-time parameter's current value (server_version, client_encoding, TimeZone, ...)."""

    TYPE: ClassVar[bytes] = b"S"
    name: str
    value: str

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().cstring(self.name).cstring(self.value).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "ParameterStatus")
        name, value = reader.cstring(), reader.cstring()
        reader.finish()
        return cls(name, value)


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    """The backend's process id and the secret key a CancelRequest must present."""

    TYPE: ClassVar[bytes] = b"K"
    process_id: int
    secret_key: bytes = field(repr=False)

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(self.process_id).raw(self.secret_key).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "BackendKeyData")
        process_id = reader.int32()
        return cls(process_id, check_cancel_key(reader.rest(), "BackendKeyData"))


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    """The server waits for a query; status ``I`` idle, ``T`` in a transaction, ``E`` in a failed one."""

    TYPE: ClassVar[bytes] = b"Z"
    status: str = "I"

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().raw(self.status.encode()).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        if len(payload) != 1 or payload[0] not in b"ITE":
            raise ProtocolError("ReadyForQuery: status must be one of 'I', 'T', 'E'")
        return cls(chr(payload[0]))


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    """A NOTIFY delivered to a listening session."""

    TYPE: ClassVar[bytes] = b"A"
    process_id: int
    channel: str
    payload: str = ""

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(self.process_id).cstring(self.channel).cstring(self.payload).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "NotificationResponse")
        result = cls(reader.int32(), reader.cstring(), reader.cstring())
        reader.finish()
        return result


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    """The server supports at most ``newest_minor`` and none of ``unsupported_options``."""

    TYPE: ClassVar[bytes] = b"v"
    newest_minor: int
    unsupported_options: tuple[str, ...] = ()

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().int32(self.newest_minor).int32(len(self.unsupported_options))
        for name in self.unsupported_options:
            writer.cstring(name)
        return writer.typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "NegotiateProtocolVersion")
        minor, count = reader.int32(), reader.int32()
        if minor < 0 or count < 0:
            raise ProtocolError("NegotiateProtocolVersion: negative version or count")
        names = tuple(reader.cstring() for _ in range(count))
        reader.finish()
        return cls(minor, names)


@dataclass(frozen=True, slots=True)
class FunctionCallResponse:
    """The result of a FunctionCall (None: NULL)."""

    TYPE: ClassVar[bytes] = b"V"
    value: bytes | None

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().counted(self.value).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "FunctionCallResponse")
        value = reader.counted()
        reader.finish()
        return cls(value)


BackendMessage = (
    AuthenticationRequest
    | ParameterStatus
    | BackendKeyData
    | ReadyForQuery
    | RowDescription
    | DataRow
    | CommandComplete
    | EmptyQueryResponse
    | ErrorResponse
    | NoticeResponse
    | NotificationResponse
    | ParameterDescription
    | NoData
    | ParseComplete
    | BindComplete
    | CloseComplete
    | PortalSuspended
    | CopyInResponse
    | CopyOutResponse
    | CopyBothResponse
    | CopyData
    | CopyDone
    | NegotiateProtocolVersion
    | FunctionCallResponse
)

_CLASSES: tuple[Any, ...] = (
    ParameterStatus,
    BackendKeyData,
    ReadyForQuery,
    RowDescription,
    DataRow,
    CommandComplete,
    EmptyQueryResponse,
    ErrorResponse,
    NoticeResponse,
    NotificationResponse,
    ParameterDescription,
    NoData,
    ParseComplete,
    BindComplete,
    CloseComplete,
    PortalSuspended,
    CopyInResponse,
    CopyOutResponse,
    CopyBothResponse,
    CopyData,
    CopyDone,
    NegotiateProtocolVersion,
    FunctionCallResponse,
)
_DECODERS: dict[int, Callable[[BytesLike], BackendMessage]] = {cls.TYPE[0]: cls.decode for cls in _CLASSES}
_DECODERS[AUTH[0]] = decode_authentication

__all__ = [
    "BackendKeyData",
    "BackendMessage",
    "BindComplete",
    "CloseComplete",
    "CommandComplete",
    "DataRow",
    "EmptyQueryResponse",
    "FieldDescription",
    "FunctionCallResponse",
    "NegotiateProtocolVersion",
    "NoData",
    "NotificationResponse",
    "ParameterDescription",
    "ParameterStatus",
    "ParseComplete",
    "PortalSuspended",
    "ReadyForQuery",
    "RowDescription",
    "data_row_values",
    "decode_backend",
]


def decode_backend(kind: int, payload: BytesLike) -> BackendMessage:
    """Decode a server message body by its type byte."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown backend message type {chr(kind)!r}")
    return decoder(payload)
