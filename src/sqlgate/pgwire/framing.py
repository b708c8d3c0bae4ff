"""Incremental framing: arbitrary chunks of a byte stream in, complete messages out.

A relay mostly forwards bytes without decoding them, so the fast path is
:meth:`Framer.split`: it checks each header (type byte and length) and returns one
:class:`FrameBatch` holding the complete messages *exactly as received* in one
``bytes`` object plus an index of ``(type, start, end)`` per message. The relay writes
``batch.data`` in one call and decodes only the few messages it inspects, through
``batch.payload(i)``. A chunk that arrives whole is passed through without a copy::

    batch = framer.split(chunk)
    for kind, start, end in batch.index:
        if kind == BackendType.COMMAND_COMPLETE:
            rows = CommandComplete.decode(memoryview(batch.data)[start + 5 : end]).rows
    client.write(batch.data)

The startup phase has no type byte (StartupMessage, SSLRequest, GSSENCRequest,
CancelRequest); :meth:`Framer.next_startup` reads one such message at a time, since
what follows depends on the answer.

Malformed headers are rejected as soon as they are seen, before the body arrives:
unknown type bytes for the sending side, lengths below 4, and lengths above the
configured limit (1 GiB by default for typed messages, 10 KB for startup messages;
:class:`MessageTooLarge`, SQLSTATE 54000, for the last).

Messages of the types in ``stream_types`` (CopyData, DataRow) longer than
``stream_over`` bytes are not bound by the limit and never buffered whole: they are
returned in pieces as they arrive, each piece indexed with the message's type (the
first piece starts with the header). Only a reader that forwards such messages
unread may ask for this. After a large message the buffer's memory is given back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.codec import TYPED_HEADER, UINT32, BytesLike

MAX_MESSAGE_SIZE = 1 << 30
"""Default limit for a typed message (CopyData and DataRow can be large)."""
MAX_STARTUP_SIZE = 10_000
"""Limit for a startup-phase message (PostgreSQL uses the same 10,000 bytes)."""

STREAM_OVER = 256 * 1024
"""Default size above which a message of a streamed type is passed on in pieces."""
_SHRINK_OVER = 1 << 20  # an empty buffer holding more memory than this is replaced by a new one

FRONTEND_TYPES = b"BCdcfDEHFPpQSX"
"""Type bytes a client may send once the startup phase is over."""
BACKEND_TYPES = b"RK23CdcGHWDIEVvnNAtS1sZT"
"""Type bytes a server may send."""

Sender = Literal["frontend", "backend"]


class MessageTooLarge(ProtocolError):
    """A message declared longer than the limit (refused from its header, before its body is read)."""

    sqlstate = "54000"


class Frame(NamedTuple):
    """One complete message, undecoded: its type byte (0 for startup messages) and its bytes."""

    type: int
    data: bytes

    @property
    def payload(self) -> memoryview:
        """The message body, after the type byte and length."""
        return memoryview(self.data)[5 if self.type else 4 :]


class FrameBatch:
    """Complete messages as received (``data``) and where each one lies in it (``index``)."""

    __slots__ = ("data", "index")

    def __init__(self, data: bytes, index: list[tuple[int, int, int]]) -> None:
        self.data = data
        self.index = index
        """``(type, start, end)`` per message; ``data[start:end]`` is the whole message."""

    def __len__(self) -> int:
        return len(self.index)

    def __bool__(self) -> bool:
        return bool(self.index)

    def __iter__(self) -> Iterator[Frame]:
        data = self.data
        for kind, start, end in self.index:
            yield Frame(kind, data[start:end])

    def payload(self, position: int) -> memoryview:
        """The body of message number ``position`` (no copy)."""
        _, start, end = self.index[position]
        return memoryview(self.data)[start + 5 : end]


EMPTY_BATCH = FrameBatch(b"", [])


class Framer:
    """Buffers one direction of a connection and cuts it into messages.

    ``sender`` names who writes the stream (``"frontend"``: a client, ``"backend"``:
    a server), which fixes the type bytes accepted. ``max_size`` may be changed at
    any time (a handshake lowers it while authenticating).
    """

    __slots__ = (
        "_allowed",
        "_buf",
        "_streamed",
        "_streaming",
        "max_size",
        "max_startup_size",
        "sender",
        "stream_over",
        "stream_types",
    )

    def __init__(
        self,
        sender: Sender,
        *,
        max_size: int = MAX_MESSAGE_SIZE,
        max_startup_size: int = MAX_STARTUP_SIZE,
        stream_types: bytes = b"",
        stream_over: int = STREAM_OVER,
    ) -> None:
        self.sender = sender
        self.max_size = max_size
        self.max_startup_size = max_startup_size
        self.stream_types = stream_types
        """Type bytes whose long messages :meth:`split` returns in pieces (may be changed at any time)."""
        self.stream_over = stream_over
        allowed = bytearray(256)
        for kind in FRONTEND_TYPES if sender == "frontend" else BACKEND_TYPES:
            allowed[kind] = 1
        self._allowed = bytes(allowed)
        self._buf = bytearray()
        self._streaming = 0  # bytes still to come of a message being passed on in pieces
        self._streamed = 0  # its type

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages (and the rest of a message being streamed)."""
        return len(self._buf) + self._streaming

    @property
    def streaming(self) -> bool:
        """True while a message is being passed on in pieces (part of it returned, the rest not yet)."""
        return self._streaming > 0

    def feed(self, data: BytesLike) -> None:
        """Add received bytes."""
        self._buf += data

    def take_buffered(self) -> bytes:
        """Remove and return every buffered byte (to hand a stream over to another reader)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def split(self, data: BytesLike = b"") -> FrameBatch:
        """Add ``data``, then remove and return every complete typed message (and pieces of streamed ones)."""
        if self._streaming:
            return self._split_streaming(data)
        buf = self._buf
        if not buf and isinstance(data, bytes):
            index, end = self._scan(data)
            if end < len(data):
                buf += memoryview(data)[end:]
                data = data[:end]
            return FrameBatch(data, index) if index else EMPTY_BATCH
        buf += data
        index, end = self._scan(buf)
        if not index:
            return EMPTY_BATCH
        with memoryview(buf) as view, view[:end] as head:
            whole = bytes(head)  # one copy (slicing the bytearray first would make two)
        del buf[:end]
        if not buf and buf.__alloc__() > _SHRINK_OVER:
            self._buf = bytearray()  # no buffer is kept at its peak
        return FrameBatch(whole, index)

    def _split_streaming(self, data: BytesLike) -> FrameBatch:
        """The next piece of a message being streamed, then whatever follows it."""
        piece = bytes(data[: self._streaming])
        self._streaming -= len(piece)
        first = FrameBatch(piece, [(self._streamed, 0, len(piece))]) if piece else EMPTY_BATCH
        rest = data[len(piece) :]
        if self._streaming or not rest:
            return first
        after = self.split(bytes(rest))
        if not after:
            return first
        offset = len(piece)
        index = [(kind, begin + offset, end + offset) for kind, begin, end in after.index]
        return FrameBatch(piece + after.data, first.index + index)

    def next_frame(self) -> Frame | None:
        """Remove and return the next complete typed message, or None until one has arrived."""
        buf = self._buf
        if len(buf) < 5:
            return None
        kind, length = TYPED_HEADER.unpack_from(buf, 0)
        self._check(kind, length)
        if len(buf) <= length:
            return None
        data = bytes(buf[: length + 1])
        del buf[: length + 1]
        return Frame(kind, data)

    def next_startup(self) -> Frame | None:
        """Remove and return the next startup-phase message (no type byte), or None until it has arrived."""
        buf = self._buf
        if len(buf) < 4:
            return None
        length = UINT32.unpack_from(buf, 0)[0]
        if length < 8 or length > self.max_startup_size:
            if buf[0] == 0x16:
                raise ProtocolError("received a TLS handshake without SSLRequest; direct TLS is not supported")
            raise ProtocolError(f"invalid startup message length {length}")
        if len(buf) < length:
            return None
        data = bytes(buf[:length])
        del buf[:length]
        return Frame(0, data)

    def _scan(self, src: BytesLike) -> tuple[list[tuple[int, int, int]], int]:
        """Index the complete messages at the start of ``src``; returns the index and where they end.

        A long message of a streamed type ends the scan: its first piece (to the end
        of ``src``) is indexed, and the rest of it will be returned as it arrives.
        """
        unpack = TYPED_HEADER.unpack_from
        allowed = self._allowed
        limit = min(self.max_size, self.stream_over) if self.stream_types else self.max_size
        size = len(src)
        index: list[tuple[int, int, int]] = []
        append = index.append
        pos = 0
        while size - pos >= 5:
            kind, length = unpack(src, pos)
            if not allowed[kind] or length < 4 or length > limit:
                if length > self.stream_over and kind in self.stream_types and allowed[kind]:
                    self._streamed, self._streaming = kind, pos + 1 + length - size
                    append((kind, pos, size))
                    return index, size
                self._check(kind, length)
            end = pos + 1 + length
            if end > size:
                break
            append((kind, pos, end))
            pos = end
        return index, pos

    def _check(self, kind: int, length: int) -> None:
        if not self._allowed[kind]:
            raise ProtocolError(f"unknown {self.sender} message type {chr(kind)!r}")
        if length < 4:
            raise ProtocolError(f"invalid message length {length} for message type {chr(kind)!r}")
        if length > self.max_size:
            raise MessageTooLarge(
                f"message type {chr(kind)!r} of {length} bytes exceeds the limit of {self.max_size} bytes"
            )
