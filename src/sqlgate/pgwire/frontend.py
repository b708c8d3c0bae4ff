"""Typed messages a client sends after startup: simple and extended query, COPY, function calls.

Each message is a frozen dataclass with ``encode() -> bytes`` (the whole message) and
``decode(payload)`` (the body after type byte and length). :func:`decode_frontend`
picks the class by type byte. Authentication responses (``p``) live in
:mod:`sqlgate.pgwire.auth`, since their meaning depends on what the server asked.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.codec import BINARY, INT16, INT32, TEXT, BytesLike, EmptyMessage, Reader, Writer, read_formats
from sqlgate.pgwire.copy import CopyData, CopyDone, CopyFail


def read_values(reader: Reader) -> tuple[bytes | None, ...]:
    """A count then that many length-prefixed values (None for SQL NULL)."""
    return tuple(reader.counted() for _ in range(reader.count()))


def read_target(reader: Reader) -> Literal["S", "P"]:
    """The ``S`` (prepared statement) or ``P`` (portal) byte of Describe and Close."""
    target = reader.byte()
    if target == 0x53:
        return "S"
    if target == 0x50:
        return "P"
    raise ProtocolError(f"{reader.what}: target must be 'S' or 'P', got {chr(target)!r}")


@dataclass(frozen=True, slots=True)
class Query:
    """A simple-protocol query: one string that may hold several statements."""

    TYPE: ClassVar[bytes] = b"Q"
    sql: str

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().cstring(self.sql).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "Query")
        sql = reader.cstring()
        reader.finish()
        return cls(sql)


@dataclass(frozen=True, slots=True)
class Parse:
    """Prepare ``sql`` as statement ``name`` ("" is the unnamed statement)."""

    TYPE: ClassVar[bytes] = b"P"
    name: str
    sql: str
    param_types: tuple[int, ...] = ()

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().cstring(self.name).cstring(self.sql).int16(len(self.param_types))
        for oid in self.param_types:
            writer.uint32(oid)
        return writer.typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "Parse")
        name, sql = reader.cstring(), reader.cstring()
        types = tuple(reader.uint32() for _ in range(reader.count()))
        reader.finish()
        return cls(name, sql, types)


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind parameter values to a prepared statement, making portal ``portal``."""

    TYPE: ClassVar[bytes] = b"B"
    portal: str
    statement: str
    param_formats: tuple[int, ...] = ()
    params: tuple[bytes | None, ...] = ()
    result_formats: tuple[int, ...] = ()

    def param_format(self, position: int) -> int:
        """The format of parameter ``position`` (no codes: text; one code: applies to all)."""
        if not self.param_formats:
            return TEXT
        return self.param_formats[0] if len(self.param_formats) == 1 else self.param_formats[position]

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().cstring(self.portal).cstring(self.statement).int16_array(self.param_formats)
        writer.int16(len(self.params))
        for value in self.params:
            writer.counted(value)
        return writer.int16_array(self.result_formats).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body (a well-formed one in a single pass; anything else by the reader, for its exact error)."""
        data = bytes(payload)
        try:
            return cls(*_bind_fields(data))
        except (ValueError, struct.error):
            return cls._decode_checked(data)

    @classmethod
    def _decode_checked(cls, payload: BytesLike) -> Self:
        reader = Reader(payload, "Bind")
        portal, statement = reader.cstring(), reader.cstring()
        param_formats = read_formats(reader)
        params = read_values(reader)
        result_formats = read_formats(reader)
        reader.finish()
        if len(param_formats) > 1 and len(param_formats) != len(params):
            raise ProtocolError(f"Bind: {len(param_formats)} parameter formats for {len(params)} parameters")
        return cls(portal, statement, param_formats, params, result_formats)


_Formats = tuple[int, ...]


def _bind_fields(data: bytes) -> tuple[str, str, _Formats, tuple[bytes | None, ...], _Formats]:
    """Bind's fields from a well-formed body; ValueError or struct.error on anything else."""
    end = data.index(0)
    portal = data[:end].decode()
    pos, end = end + 1, data.index(0, end + 1)
    statement = data[pos:end].decode()
    param_formats, pos = _formats(data, end + 1)
    (count,), pos = INT16.unpack_from(data, pos), pos + 2
    if count < 0:
        raise ValueError(count)
    params: list[bytes | None] = []
    size_of = INT32.unpack_from
    for _ in range(count):
        (size,), pos = size_of(data, pos), pos + 4
        if size == -1:
            params.append(None)
            continue
        if size < 0 or pos + size > len(data):
            raise ValueError(size)
        params.append(data[pos : pos + size])
        pos += size
    result_formats, pos = _formats(data, pos)
    if pos != len(data) or (len(param_formats) > 1 and len(param_formats) != count):
        raise ValueError(pos)
    return portal, statement, param_formats, tuple(params), result_formats


def _formats(data: bytes, pos: int) -> tuple[_Formats, int]:
    (count,) = INT16.unpack_from(data, pos)
    if count < 0:
        raise ValueError(count)
    formats = struct.unpack_from(f"!{count}h", data, pos + 2) if count else ()
    if any(f not in (TEXT, BINARY) for f in formats):
        raise ValueError(formats)
    return formats, pos + 2 + 2 * count


@dataclass(frozen=True, slots=True)
class Describe:
    """Describe a prepared statement (``S``) or a portal (``P``)."""

    TYPE: ClassVar[bytes] = b"D"
    target: Literal["S", "P"]
    name: str

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().raw(self.target.encode()).cstring(self.name).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, cls.__name__)
        target, name = read_target(reader), reader.cstring()
        reader.finish()
        return cls(target, name)


@dataclass(frozen=True, slots=True)
class Close(Describe):
    """Close a prepared statement (``S``) or a portal (``P``)."""

    TYPE: ClassVar[bytes] = b"C"


@dataclass(frozen=True, slots=True)
class Execute:
    """Run portal ``portal``, returning at most ``max_rows`` rows (0: all)."""

    TYPE: ClassVar[bytes] = b"E"
    portal: str
    max_rows: int = 0

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().cstring(self.portal).int32(self.max_rows).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        data = bytes(payload)
        end = data.find(0)
        if end >= 0 and len(data) == end + 5:  # the usual shape, read at once
            with contextlib.suppress(UnicodeDecodeError):
                return cls(data[:end].decode(), INT32.unpack_from(data, end + 1)[0])
        reader = Reader(data, "Execute")
        portal, max_rows = reader.cstring(), reader.int32()
        reader.finish()
        return cls(portal, max_rows)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The legacy fast-path function call."""

    TYPE: ClassVar[bytes] = b"F"
    function_oid: int
    arg_formats: tuple[int, ...] = ()
    args: tuple[bytes | None, ...] = ()
    result_format: int = TEXT

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().uint32(self.function_oid).int16_array(self.arg_formats).int16(len(self.args))
        for value in self.args:
            writer.counted(value)
        return writer.int16(self.result_format).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "FunctionCall")
        oid, formats, args = reader.uint32(), read_formats(reader), read_values(reader)
        result_format = reader.int16()
        reader.finish()
        if result_format not in (TEXT, BINARY):
            raise ProtocolError(f"FunctionCall: result format must be 0 or 1, got {result_format}")
        return cls(oid, formats, args, result_format)


@dataclass(frozen=True, slots=True)
class Sync(EmptyMessage):
    """End of an extended-query batch: the server answers ReadyForQuery."""

    TYPE: ClassVar[bytes] = b"S"


@dataclass(frozen=True, slots=True)
class Flush(EmptyMessage):
    """Ask the server to send what it has buffered."""

    TYPE: ClassVar[bytes] = b"H"


@dataclass(frozen=True, slots=True)
class Terminate(EmptyMessage):
    """The client is closing the connection."""

    TYPE: ClassVar[bytes] = b"X"


FrontendMessage = (
    Query
    | Parse
    | Bind
    | Describe
    | Close
    | Execute
    | Sync
    | Flush
    | Terminate
    | CopyData
    | CopyDone
    | CopyFail
    | FunctionCall
)

_DECODERS: dict[int, Callable[[BytesLike], FrontendMessage]] = {
    cls.TYPE[0]: cls.decode
    for cls in (Query, Parse, Bind, Describe, Close, Execute, Sync, Flush, Terminate, CopyData, CopyDone, CopyFail)
}
_DECODERS[FunctionCall.TYPE[0]] = FunctionCall.decode


def decode_frontend(kind: int, payload: BytesLike) -> FrontendMessage:
    """Decode a client message body by its type byte (not ``p``: see :mod:`sqlgate.pgwire.auth`)."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"cannot decode frontend message type {chr(kind)!r} without context")
    return decoder(payload)


__all__ = [
    "BINARY",
    "TEXT",
    "Bind",
    "Close",
    "CopyData",
    "CopyDone",
    "CopyFail",
    "Describe",
    "Execute",
    "Flush",
    "FrontendMessage",
    "FunctionCall",
    "Parse",
    "Query",
    "Sync",
    "Terminate",
    "decode_frontend",
    "read_target",
    "read_values",
]
