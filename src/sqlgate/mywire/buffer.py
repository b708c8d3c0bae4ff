"""Reading and writing the protocol's basic types: fixed integers, length-encoded integers and strings.

:class:`Reader` walks one packet's payload and raises :class:`~sqlgate.errors.ProtocolError`
(never IndexError or struct.error) when the bytes end early or hold a value the
protocol does not allow, so every decoder built on it fails with a clear error.
"""

from __future__ import annotations

import struct

from sqlgate.errors import ProtocolError

_U16 = struct.Struct("<H")
_U24_PAD = b"\x00"
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Reader:
    """A cursor over one payload."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes | memoryview, what: str = "packet", pos: int = 0) -> None:
        self.data = bytes(data)
        self.pos = pos
        self.what = what

    def _need(self, count: int) -> None:
        if count < 0 or self.pos + count > len(self.data):
            raise ProtocolError(f"{self.what} ends early: {count} more bytes expected at offset {self.pos}")

    @property
    def remaining(self) -> int:
        """Bytes left to read."""
        return len(self.data) - self.pos

    def int1(self) -> int:
        """One unsigned byte."""
        self._need(1)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def int2(self) -> int:
        """A 2-byte little-endian unsigned integer."""
        self._need(2)
        (value,) = _U16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def int3(self) -> int:
        """A 3-byte little-endian unsigned integer."""
        self._need(3)
        value = int.from_bytes(self.data[self.pos : self.pos + 3], "little")
        self.pos += 3
        return value

    def int4(self) -> int:
        """A 4-byte little-endian unsigned integer."""
        self._need(4)
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def int8(self) -> int:
        """An 8-byte little-endian unsigned integer."""
        self._need(8)
        (value,) = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return int(value)

    def lenenc_int(self) -> int | None:
        """A length-encoded integer; None for 0xFB (NULL in a text row)."""
        first = self.int1()
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.int2()
        if first == 0xFD:
            return self.int3()
        if first == 0xFE:
            return self.int8()
        raise ProtocolError(f"{self.what}: 0xFF is not a length-encoded integer (offset {self.pos - 1})")

    def lenenc_bytes(self) -> bytes | None:
        """A length-encoded string; None for NULL."""
        length = self.lenenc_int()
        if length is None:
            return None
        return self.take(length)

    def lenenc_str(self) -> str:
        """A length-encoded string that must not be NULL, as UTF-8 text."""
        value = self.lenenc_bytes()
        if value is None:
            raise ProtocolError(f"{self.what}: a NULL where a string was expected")
        return value.decode("utf-8", "replace")

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        self._need(count)
        value = self.data[self.pos : self.pos + count]
        self.pos += count
        return value

    def rest(self) -> bytes:
        """Every byte left."""
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value

    def cstring(self) -> bytes:
        """A NUL-terminated string (the NUL is consumed, not returned)."""
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolError(f"{self.what}: a string is not NUL-terminated (offset {self.pos})")
        value = self.data[self.pos : end]
        self.pos = end + 1
        return value

    def cstring_or_rest(self) -> bytes:
        """A NUL-terminated string, or every byte left when no NUL follows (older peers omit it)."""
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            return self.rest()
        value = self.data[self.pos : end]
        self.pos = end + 1
        return value


def int1(value: int) -> bytes:
    """One byte."""
    return bytes((value & 0xFF,))


def int2(value: int) -> bytes:
    """2 bytes little-endian."""
    return _U16.pack(value & 0xFFFF)


def int3(value: int) -> bytes:
    """3 bytes little-endian."""
    return (value & 0xFFFFFF).to_bytes(3, "little")


def int4(value: int) -> bytes:
    """4 bytes little-endian."""
    return _U32.pack(value & 0xFFFFFFFF)


def int8(value: int) -> bytes:
    """8 bytes little-endian."""
    return _U64.pack(value & 0xFFFFFFFFFFFFFFFF)


def lenenc_int(value: int) -> bytes:
    """A length-encoded integer."""
    if value < 0:
        raise ValueError("a length-encoded integer cannot be negative")
    if value < 0xFB:
        return bytes((value,))
    if value <= 0xFFFF:
        return b"\xfc" + _U16.pack(value)
    if value <= 0xFFFFFF:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + _U64.pack(value)


def lenenc_bytes(value: bytes | None) -> bytes:
    """A length-encoded string (0xFB for NULL, as text rows write it)."""
    if value is None:
        return b"\xfb"
    return lenenc_int(len(value)) + value


def lenenc_str(value: str) -> bytes:
    """A length-encoded UTF-8 string."""
    return lenenc_bytes(value.encode())


def cstring(value: bytes | str) -> bytes:
    """A NUL-terminated string."""
    data = value.encode() if isinstance(value, str) else value
    if b"\x00" in data:
        raise ValueError("a NUL-terminated string cannot hold NUL")
    return data + b"\x00"
