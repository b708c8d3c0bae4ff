"""Packets from bytes: headers, sequence ids, 16 MiB continuation, chunked arrival, size bounds."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError
from sqlgate.mywire.constants import MAX_PAYLOAD
from sqlgate.mywire.packets import PacketReader, chunks_needed, encode


def test_a_packet_is_length_sequence_and_payload():
    """3-byte little-endian length, one sequence byte, the payload."""
    assert encode(b"\x03SELECT 1", 0) == b"\x09\x00\x00\x00\x03SELECT 1"
    reader = PacketReader()
    reader.feed(b"\x09\x00\x00\x00\x03SELECT 1")
    packet = reader.next_packet()
    assert packet is not None
    assert (packet.payload, packet.seq, packet.next_seq) == (b"\x03SELECT 1", 0, 1)
    assert packet.raw == b"\x09\x00\x00\x00\x03SELECT 1"
    assert reader.next_packet() is None


def test_bytes_arriving_one_at_a_time_make_the_same_packets():
    """Any split of the stream gives the same packets, each once."""
    stream = encode(b"first", 0) + encode(b"", 1) + encode(b"third" * 100, 2)
    reader = PacketReader()
    got = []
    for byte in stream:
        reader.feed(bytes([byte]))
        got += [p.payload for p in reader.packets()]
    assert got == [b"first", b"", b"third" * 100]


def test_a_payload_of_16_mib_continues_in_an_empty_packet():
    """A payload of exactly 0xFFFFFF bytes is followed by an empty chunk; sequence ids count on."""
    payload = b"x" * MAX_PAYLOAD
    wire = encode(payload, 7)
    assert len(wire) == MAX_PAYLOAD + 4 + 4
    assert wire[MAX_PAYLOAD + 4 :] == b"\x00\x00\x00\x08"
    reader = PacketReader()
    reader.feed(wire)
    packet = reader.next_packet()
    assert packet is not None
    assert (len(packet.payload), packet.seq, packet.last_seq, packet.next_seq) == (MAX_PAYLOAD, 7, 8, 9)
    assert chunks_needed(MAX_PAYLOAD) == 2


def test_a_long_payload_is_cut_and_joined_again():
    """A payload over 16 MiB takes two chunks and comes back whole, the sequence id wrapping at 256."""
    payload = bytes(range(256)) * (MAX_PAYLOAD // 256 + 10)
    wire = encode(payload, 255)
    reader = PacketReader()
    reader.feed(wire[:100])
    assert reader.next_packet() is None
    reader.feed(wire[100:])
    packet = reader.next_packet()
    assert packet is not None
    assert packet.payload == payload
    assert (packet.seq, packet.last_seq) == (255, 0)


def test_a_continuation_with_the_wrong_sequence_id_is_refused():
    """Chunks of one payload must carry consecutive sequence ids."""
    wire = bytearray(encode(b"y" * MAX_PAYLOAD + b"z", 0))
    wire[MAX_PAYLOAD + 4 + 3] = 5
    reader = PacketReader()
    reader.feed(bytes(wire))
    with pytest.raises(ProtocolError, match="sequence id 5"):
        reader.next_packet()


def test_a_packet_over_the_limit_is_refused_from_its_header():
    """The size bound applies as soon as the header arrives, before the body."""
    reader = PacketReader(max_size=1000, what="client")
    reader.feed(b"\xe9\x03\x00\x00")
    with pytest.raises(ProtocolError, match="client sent a packet over 1000 bytes"):
        reader.next_packet()


def test_take_buffered_hands_over_what_was_not_read():
    """At a protocol switch the unread bytes are handed over whole."""
    reader = PacketReader()
    reader.feed(encode(b"one", 0) + b"\x05\x00")
    assert reader.next_packet() is not None
    assert reader.take_buffered() == b"\x05\x00"
    assert reader.buffered == 0
