"""COPY messages: the data and its end (sent by either side), the client's abort, the server's start.

Each message is a frozen dataclass with ``encode() -> bytes`` and ``decode(payload)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.codec import BytesLike, EmptyMessage, Reader, Writer, read_formats


@dataclass(frozen=True, slots=True)
class CopyData:
    """A chunk of COPY data (sent by either side)."""

    TYPE: ClassVar[bytes] = b"d"
    data: bytes

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().raw(self.data).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        return cls(bytes(payload))


@dataclass(frozen=True, slots=True)
class CopyDone(EmptyMessage):
    """End of COPY data (sent by either side)."""

    TYPE: ClassVar[bytes] = b"c"


@dataclass(frozen=True, slots=True)
class CopyFail:
    """The client aborts COPY FROM STDIN with a reason."""

    TYPE: ClassVar[bytes] = b"f"
    message: str

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().cstring(self.message).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "CopyFail")
        message = reader.cstring()
        reader.finish()
        return cls(message)


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
