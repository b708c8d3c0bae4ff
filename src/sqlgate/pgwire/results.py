"""Messages that carry results: row descriptions, rows, completion tags, extended-protocol acknowledgements.

Each message is a frozen dataclass with ``encode() -> bytes`` and ``decode(payload)``.
:func:`data_row_values` reads a DataRow body without building an object, for masking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Self

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.codec import INT16, INT32, BytesLike, EmptyMessage, Reader, Writer


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
        """Parse the body (the usual ASCII tag in one pass; anything else by the reader, for its exact error)."""
        raw = bytes(payload)
        if raw.endswith(b"\0") and raw.find(b"\0") == len(raw) - 1 and raw.isascii():
            return cls(raw[:-1].decode("ascii"))
        reader = Reader(raw, "CommandComplete")
        tag = reader.cstring()
        reader.finish()
        return cls(tag)


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
class ParseComplete(EmptyMessage):
    """Parse succeeded."""

    TYPE: ClassVar[bytes] = b"1"


@dataclass(frozen=True, slots=True)
class BindComplete(EmptyMessage):
    """Bind succeeded."""

    TYPE: ClassVar[bytes] = b"2"


@dataclass(frozen=True, slots=True)
class CloseComplete(EmptyMessage):
    """Close succeeded."""

    TYPE: ClassVar[bytes] = b"3"


@dataclass(frozen=True, slots=True)
class NoData(EmptyMessage):
    """The described statement or portal returns no rows."""

    TYPE: ClassVar[bytes] = b"n"


@dataclass(frozen=True, slots=True)
class PortalSuspended(EmptyMessage):
    """Execute stopped at its row limit; the portal can be resumed."""

    TYPE: ClassVar[bytes] = b"s"


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse(EmptyMessage):
    """The query string held no statement."""

    TYPE: ClassVar[bytes] = b"I"
