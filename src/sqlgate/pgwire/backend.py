"""Typed messages a server sends: session state, results, COPY, notifications.

Each message is a frozen dataclass with ``encode() -> bytes`` and ``decode(payload)``;
:func:`decode_backend` picks the class by type byte, including authentication requests
(:mod:`sqlgate.pgwire.auth`) and errors and notices (:mod:`sqlgate.pgwire.notices`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Self

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.auth import AUTH, AuthenticationRequest, decode_authentication
from sqlgate.pgwire.codec import INT16, INT32, BytesLike, Reader, Writer, empty_message
from sqlgate.pgwire.frontend import CopyData, CopyDone, read_formats
from sqlgate.pgwire.notices import ErrorResponse, NoticeResponse
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


class FieldDescription(NamedTuple):
    """One result column."""

    name: str
    table_oid: int = 0
    column_attnum: int = 0
    type_oid: int = 25
    type_size: int = -1
    type_modifier: int = -1
    format: int = 0


@dataclass(frozen=True, slots=True)
class RowDescription:
    """The columns of the rows that follow."""

    TYPE: ClassVar[bytes] = b"T"
    fields: tuple[FieldDescription, ...]

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().int16(len(self.fields))
        for f in self.fields:
            writer.cstring(f.name).uint32(f.table_oid).int16(f.column_attnum).uint32(f.type_oid)
            writer.int16(f.type_size).int32(f.type_modifier).int16(f.format)
        return writer.typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "RowDescription")
        fields = tuple(
            FieldDescription(
                reader.cstring(),
                reader.uint32(),
                reader.int16(),
                reader.uint32(),
                reader.int16(),
                reader.int32(),
                reader.int16(),
            )
            for _ in range(reader.count())
        )
        reader.finish()
        return cls(fields)


@dataclass(frozen=True, slots=True)
class DataRow:
    """One result row; each value is bytes in its column's format, or None for NULL."""

    TYPE: ClassVar[bytes] = b"D"
    values: tuple[bytes | None, ...]

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().int16(len(self.values))
        for value in self.values:
            writer.counted(value)
        return writer.typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        return cls(data_row_values(payload))


def data_row_values(payload: BytesLike) -> tuple[bytes | None, ...]:
    """The values of a DataRow body, without building a message object (the masking hot path)."""
    data = payload if isinstance(payload, bytes) else bytes(payload)
    size = len(data)
    if size < 2:
        raise ProtocolError("DataRow: message is truncated")
    count = INT16.unpack_from(data, 0)[0]
    if count < 0:
        raise ProtocolError(f"DataRow: negative count {count}")
    values: list[bytes | None] = []
    pos = 2
    unpack = INT32.unpack_from
    for _ in range(count):
        if pos + 4 > size:
            raise ProtocolError("DataRow: message is truncated")
        length = unpack(data, pos)[0]
        pos += 4
        if length < 0:
            if length != -1:
                raise ProtocolError(f"DataRow: negative length {length}")
            values.append(None)
            continue
        end = pos + length
        if end > size:
            raise ProtocolError("DataRow: message is truncated")
        values.append(data[pos:end])
        pos = end
    if pos != size:
        raise ProtocolError(f"DataRow: {size - pos} unexpected trailing bytes")
    return tuple(values)


@dataclass(frozen=True, slots=True)
class CommandComplete:
    """A statement finished; ``tag`` is e.g. ``SELECT 3``, ``INSERT 0 1``, ``CREATE TABLE``."""

    TYPE: ClassVar[bytes] = b"C"
    tag: str

    @property
    def rows(self) -> int | None:
        """The row count at the end of the tag, when the command reports one."""
        last = self.tag.rpartition(" ")[2]
        return int(last) if last.isascii() and last.isdigit() else None

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().cstring(self.tag).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "CommandComplete")
        tag = reader.cstring()
        reader.finish()
        return cls(tag)


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
class ParameterDescription:
    """The type OIDs of a prepared statement's parameters."""

    TYPE: ClassVar[bytes] = b"t"
    type_oids: tuple[int, ...]

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().int16(len(self.type_oids))
        for oid in self.type_oids:
            writer.uint32(oid)
        return writer.typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "ParameterDescription")
        oids = tuple(reader.uint32() for _ in range(reader.count()))
        reader.finish()
        return cls(oids)


@dataclass(frozen=True, slots=True)
class CopyInResponse:
    """The server is ready for COPY FROM STDIN; overall format and per-column formats."""

    TYPE: ClassVar[bytes] = b"G"
    format: int = 0
    column_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().byte(self.format).int16_array(self.column_formats).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, cls.__name__)
        overall = reader.byte()
        if overall > 1:
            raise ProtocolError(f"{cls.__name__}: format must be 0 or 1, got {overall}")
        formats = read_formats(reader)
        reader.finish()
        return cls(overall, formats)


@dataclass(frozen=True, slots=True)
class CopyOutResponse(CopyInResponse):
    """The server starts COPY TO STDOUT."""

    TYPE: ClassVar[bytes] = b"H"


@dataclass(frozen=True, slots=True)
class CopyBothResponse(CopyInResponse):
    """The server starts copying both ways (streaming replication)."""

    TYPE: ClassVar[bytes] = b"W"


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


@dataclass(frozen=True, slots=True)
class _Empty:
    TYPE: ClassVar[bytes] = b"\x00"

    def encode(self) -> bytes:
        """The message bytes."""
        return empty_message(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body (which must be empty)."""
        if len(payload):
            raise ProtocolError(f"{cls.__name__}: unexpected {len(payload)} bytes of body")
        return cls()


@dataclass(frozen=True, slots=True)
class ParseComplete(_Empty):
    """Parse succeeded."""

    TYPE: ClassVar[bytes] = b"1"


@dataclass(frozen=True, slots=True)
class BindComplete(_Empty):
    """Bind succeeded."""

    TYPE: ClassVar[bytes] = b"2"


@dataclass(frozen=True, slots=True)
class CloseComplete(_Empty):
    """Close succeeded."""

    TYPE: ClassVar[bytes] = b"3"


@dataclass(frozen=True, slots=True)
class NoData(_Empty):
    """The described statement or portal returns no rows."""

    TYPE: ClassVar[bytes] = b"n"


@dataclass(frozen=True, slots=True)
class PortalSuspended(_Empty):
    """Execute stopped at its row limit; the portal can be resumed."""

    TYPE: ClassVar[bytes] = b"s"


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse(_Empty):
    """The query string held no statement."""

    TYPE: ClassVar[bytes] = b"I"


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


def decode_backend(kind: int, payload: BytesLike) -> BackendMessage:
    """Decode a server message body by its type byte."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown backend message type {chr(kind)!r}")
    return decoder(payload)
