"""Packets: a 3-byte length and a sequence id before each payload; a 16 MiB - 1 payload continues.

Every message of the protocol is a *logical* packet: one payload. On the wire it
is cut into chunks of at most ``0xFFFFFF`` bytes, each with a header of its
length (3 bytes, little-endian) and a sequence id (1 byte, counting on from the
previous chunk, wrapping at 256). A chunk of exactly ``0xFFFFFF`` bytes says
that another follows; the last one is shorter (possibly empty).

:class:`PacketReader` takes arbitrary chunks of a byte stream and gives back whole
logical packets, each with the exact bytes it arrived as (``raw``), so a relay
can forward unchanged packets without encoding them again. :func:`encode` cuts a
payload into chunks. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from sqlgate.errors import ProtocolError
from sqlgate.mywire.constants import MAX_PAYLOAD

DEFAULT_MAX_SIZE = 1 << 30
"""The largest logical packet accepted by default (MySQL's own max_allowed_packet limit is 1 GiB)."""


class PacketTooLarge(ProtocolError):
    """A packet over the reader's size limit (MySQL's ER_NET_PACKET_TOO_LARGE, 1153)."""


class Packet(NamedTuple):
    """One logical packet: its payload, the sequence id of its first and last chunk, and its bytes on the wire."""

    payload: bytes
    seq: int
    last_seq: int
    raw: bytes

    @property
    def next_seq(self) -> int:
        """The sequence id the next packet of this exchange carries."""
        return (self.last_seq + 1) & 0xFF

    @property
    def first(self) -> int:
        """The payload's first byte, or -1 when it is empty."""
        return self.payload[0] if self.payload else -1


def encode(payload: bytes, seq: int) -> bytes:
    """``payload`` as wire chunks starting at sequence id ``seq``."""
    parts = []
    offset = 0
    while True:
        chunk = payload[offset : offset + MAX_PAYLOAD]
        parts.append(len(chunk).to_bytes(3, "little") + bytes((seq & 0xFF,)) + chunk)
        seq += 1
        offset += len(chunk)
        if len(chunk) < MAX_PAYLOAD:
            return b"".join(parts)


def chunks_needed(length: int) -> int:
    """How many wire chunks a payload of ``length`` bytes takes (its sequence ids advance by as many)."""
    return length // MAX_PAYLOAD + 1


class PacketReader:
    """Incremental reader: bytes in (:meth:`feed`), whole logical packets out (:meth:`packets`)."""

    __slots__ = ("_buffer", "_pos", "max_size", "what")

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE, what: str = "peer") -> None:
        self._buffer = bytearray()
        self._pos = 0
        self.max_size = max_size
        self.what = what

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        if self._pos and self._pos == len(self._buffer):
            self._buffer.clear()
            self._pos = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned packet."""
        return len(self._buffer) - self._pos

    def take_buffered(self) -> bytes:
        """Every byte not yet returned as a packet (at a protocol switch: TLS, or handing over to a relay)."""
        data = bytes(self._buffer[self._pos :])
        self._buffer.clear()
        self._pos = 0
        return data

    def next_packet(self) -> Packet | None:
        """The next whole logical packet, or None until more bytes arrive.

        Raises ProtocolError when a packet would exceed ``max_size`` (as soon as its
        headers say so) or when the sequence ids of its chunks do not follow each other.
        """
        buffer = self._buffer
        start = pos = self._pos
        end = len(buffer)
        pieces: list[bytes] = []
        total = 0
        first_seq = last_seq = -1
        while True:
            if end - pos < 4:
                return None
            length = buffer[pos] | buffer[pos + 1] << 8 | buffer[pos + 2] << 16
            seq = buffer[pos + 3]
            if first_seq < 0:
                first_seq = seq
            elif seq != (last_seq + 1) & 0xFF:
                expected = (last_seq + 1) & 0xFF
                raise ProtocolError(f"the {self.what} sent a continuation chunk with sequence id {seq}, not {expected}")
            last_seq = seq
            total += length
            if total > self.max_size:
                raise PacketTooLarge(f"the {self.what} sent a packet over {self.max_size} bytes")
            if end - pos - 4 < length:
                return None
            pieces.append(bytes(buffer[pos + 4 : pos + 4 + length]))
            pos += 4 + length
            if length < MAX_PAYLOAD:
                break
        self._pos = pos
        payload = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return Packet(payload, first_seq, last_seq, bytes(buffer[start:pos]))

    def packets(self) -> Iterator[Packet]:
        """Every whole packet buffered now."""
        while (packet := self.next_packet()) is not None:
            yield packet
