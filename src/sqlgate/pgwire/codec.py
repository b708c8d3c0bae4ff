"""Field-level reading and writing shared by every message: integers, C strings, counted bytes.

:class:`Reader` walks one message payload and raises :class:`~sqlgate.errors.ProtocolError`
for anything that does not fit (truncated fields, a string without its NUL terminator,
invalid UTF-8, trailing bytes), so decoders never index past the end or guess.
:class:`Writer` builds a payload and frames it with its type byte and length.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self, TypeAlias

from sqlgate.errors import ProtocolError

BytesLike: TypeAlias = bytes | bytearray | memoryview

INT16 = struct.Struct("!h")
UINT16 = struct.Struct("!H")
INT32 = struct.Struct("!i")
UINT32 = struct.Struct("!I")
TEXT = 0
BINARY = 1
TYPED_HEADER = struct.Struct("!BI")
"""A typed message header: the type byte, then the length (which counts itself, not the type)."""


class Reader:
    """A cursor over one message payload; every read checks the bounds."""

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, payload: BytesLike, what: str) -> None:
        self._data = payload if isinstance(payload, bytes) else bytes(payload)
        self._pos = 0
        self.what = what

    def _take(self, size: int) -> int:
        start = self._pos
        if size < 0 or start + size > len(self._data):
            raise ProtocolError(f"{self.what}: message is truncated")
        self._pos = start + size
        return start

    def byte(self) -> int:
        """One unsigned byte."""
        return self._data[self._take(1)]

    def int16(self) -> int:
        """A signed 16-bit integer."""
        return int(INT16.unpack_from(self._data, self._take(2))[0])

    def count(self) -> int:
        """A 16-bit element count, which must not be negative."""
        value = self.int16()
        if value < 0:
            raise ProtocolError(f"{self.what}: negative count {value}")
        return value

    def int32(self) -> int:
        """A signed 32-bit integer."""
        return int(INT32.unpack_from(self._data, self._take(4))[0])

    def uint32(self) -> int:
        """An unsigned 32-bit integer (object identifiers)."""
        return int(UINT32.unpack_from(self._data, self._take(4))[0])

    def raw(self, size: int) -> bytes:
        """Exactly ``size`` bytes."""
        start = self._take(size)
        return self._data[start : start + size]

    def rest(self) -> bytes:
        """Every byte left in the payload."""
        return self.raw(len(self._data) - self._pos)

    def counted(self) -> bytes | None:
        """An int32 length then that many bytes; length -1 is SQL NULL."""
        size = self.int32()
        if size == -1:
            return None
        if size < 0:
            raise ProtocolError(f"{self.what}: negative length {size}")
        return self.raw(size)

    def cstring(self) -> str:
        """A NUL-terminated UTF-8 string."""
        end = self._data.find(0, self._pos)
        if end < 0:
            raise ProtocolError(f"{self.what}: string is missing its NUL terminator")
        start, self._pos = self._pos, end + 1
        try:
            return self._data[start:end].decode()
        except UnicodeDecodeError:
            raise ProtocolError(f"{self.what}: string is not valid UTF-8") from None

    def at_end(self) -> bool:
        """True when every byte has been read."""
        return self._pos == len(self._data)

    def finish(self) -> None:
        """Check that the payload held nothing more than what was read."""
        if not self.at_end():
            raise ProtocolError(f"{self.what}: {len(self._data) - self._pos} unexpected trailing bytes")


class Writer:
    """Builds one payload; :meth:`typed` and :meth:`untyped` add the header."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts = bytearray()

    def byte(self, value: int) -> Writer:
        """One unsigned byte."""
        self._parts.append(value)
        return self

    def int16(self, value: int) -> Writer:
        """A signed 16-bit integer."""
        self._parts += INT16.pack(value)
        return self

    def int32(self, value: int) -> Writer:
        """A signed 32-bit integer."""
        self._parts += INT32.pack(value)
        return self

    def uint32(self, value: int) -> Writer:
        """An unsigned 32-bit integer (object identifiers)."""
        self._parts += UINT32.pack(value)
        return self

    def raw(self, value: BytesLike) -> Writer:
        """Bytes as they are."""
        self._parts += value
        return self

    def counted(self, value: BytesLike | None) -> Writer:
        """An int32 length then the bytes; None is written as length -1."""
        if value is None:
            return self.int32(-1)
        return self.int32(len(value)).raw(value)

    def cstring(self, value: str) -> Writer:
        """A UTF-8 string and its NUL terminator; the string itself may hold no NUL."""
        encoded = value.encode()
        if 0 in encoded:
            raise ValueError("a protocol string cannot contain NUL")
        self._parts += encoded
        self._parts.append(0)
        return self

    def int16_array(self, values: Iterable[int]) -> Writer:
        """A 16-bit count, then each value as int16."""
        items = list(values)
        self.int16(len(items))
        for item in items:
            self.int16(item)
        return self

    def typed(self, kind: bytes) -> bytes:
        """The message: type byte, length, payload."""
        return kind + UINT32.pack(len(self._parts) + 4) + self._parts

    def untyped(self) -> bytes:
        """A startup-phase message: length, payload (no type byte)."""
        return UINT32.pack(len(self._parts) + 4) + self._parts


def empty_message(kind: bytes) -> bytes:
    """A message with no payload (Sync, Flush, NoData, ...)."""
    return kind + b"\x00\x00\x00\x04"


def read_formats(reader: Reader) -> tuple[int, ...]:
    """A count then that many format codes, each 0 (text) or 1 (binary)."""
    formats = tuple(reader.int16() for _ in range(reader.count()))
    if any(f not in (TEXT, BINARY) for f in formats):
        raise ProtocolError(f"{reader.what}: format codes must be 0 (text) or 1 (binary), got {formats}")
    return formats


@dataclass(frozen=True, slots=True)
class EmptyMessage:
    """Base of the messages with no body (Sync, Flush, NoData, ...)."""

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
