"""Framing: chunks in any size give the same messages; bad headers are refused before the body arrives."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.backend import CommandComplete, DataRow, ReadyForQuery, RowDescription, decode_backend
from sqlgate.pgwire.framing import Frame, Framer, MessageTooLarge
from sqlgate.pgwire.frontend import Query, Sync
from sqlgate.pgwire.startup import SSLRequest, StartupMessage

RESULT = [
    RowDescription(()).encode(),
    DataRow((b"1", None)).encode(),
    DataRow((b"x" * 300,)).encode(),
    CommandComplete("SELECT 2").encode(),
    ReadyForQuery("I").encode(),
]
STREAM = b"".join(RESULT)


def frames_of(batches):
    return [bytes(frame.data) for batch in batches for frame in batch]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, len(STREAM)])
def test_split_gives_the_same_messages_for_any_chunk_size(size):
    framer = Framer("backend")
    batches = [framer.split(STREAM[i : i + size]) for i in range(0, len(STREAM), size)]
    assert frames_of(batches) == RESULT
    assert b"".join(batch.data for batch in batches) == STREAM
    assert framer.buffered == 0


def test_split_index_points_into_the_batch():
    batch = Framer("backend").split(STREAM)
    assert [chr(kind) for kind, _, _ in batch.index] == list("TDDCZ")
    assert decode_backend(batch.index[1][0], batch.payload(1)) == DataRow((b"1", None))
    assert len(batch) == 5


def test_a_whole_chunk_passes_through_without_a_copy():
    """The relay's common case: the chunk itself is forwarded."""
    assert Framer("backend").split(STREAM).data is STREAM


def test_a_partial_tail_waits_for_the_rest():
    framer = Framer("backend")
    first = framer.split(STREAM[:-3])
    assert frames_of([first]) == RESULT[:-1]
    assert framer.buffered == len(RESULT[-1]) - 3
    assert not framer.split(b"")
    assert frames_of([framer.split(STREAM[-3:])]) == RESULT[-1:]


def test_bytearray_and_memoryview_chunks():
    framer = Framer("backend")
    assert frames_of([framer.split(bytearray(STREAM[:10])), framer.split(memoryview(STREAM)[10:])]) == RESULT


def test_next_frame_one_at_a_time():
    framer = Framer("frontend")
    framer.feed(Query("SELECT 1").encode() + Sync().encode()[:2])
    frame = framer.next_frame()
    assert frame == Frame(ord("Q"), Query("SELECT 1").encode())
    assert bytes(frame.payload) == b"SELECT 1\x00"
    assert framer.next_frame() is None
    framer.feed(Sync().encode()[2:])
    assert framer.next_frame() == Frame(ord("S"), Sync().encode())


def test_startup_message_then_typed_messages():
    """The startup phase has no type byte; the caller switches to typed framing after it."""
    framer = Framer("frontend")
    startup = StartupMessage({"user": "u"}).encode()
    framer.feed(SSLRequest().encode() + startup + Query("x").encode())
    assert framer.next_startup() == Frame(0, SSLRequest().encode())
    frame = framer.next_startup()
    assert frame is not None
    assert bytes(frame.payload) == startup[4:]
    assert frames_of([framer.split()]) == [Query("x").encode()]


@pytest.mark.parametrize(
    ("sender", "data", "reason"),
    [
        ("frontend", b"Z\x00\x00\x00\x05I", "unknown frontend message type 'Z'"),
        ("backend", b"Q\x00\x00\x00\x05x", "unknown backend message type 'Q'"),
        ("backend", b"\x00\x00\x00\x00\x04", "unknown backend message type"),
        ("backend", b"D\x00\x00\x00\x03", "invalid message length 3"),
        ("backend", b"D\xff\xff\xff\xff", "exceeds the limit"),
        ("frontend", b"Q\x40\x00\x00\x01", "exceeds the limit"),
    ],
)
def test_bad_headers_are_refused_before_the_body(sender, data, reason):
    """Only the five header bytes are needed to refuse: no waiting for a gigabyte that never comes."""
    with pytest.raises(ProtocolError, match=reason):
        Framer(sender).split(data)
    framer = Framer(sender)
    framer.feed(data)
    with pytest.raises(ProtocolError, match=reason):
        framer.next_frame()


def test_max_size_is_configurable():
    framer = Framer("frontend", max_size=100)
    assert framer.split(Query("x" * 90).encode())
    with pytest.raises(ProtocolError, match="limit of 100 bytes"):
        framer.split(Query("x" * 100).encode())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00\x00\x04", "invalid startup message length 4"),
        (b"\x00\x00\x27\x11", "invalid startup message length 10001"),
        (b"\xff\xff\xff\xf0", "invalid startup message length"),
        (b"\x16\x03\x01\x02\x00", "direct TLS is not supported"),
    ],
)
def test_bad_startup_lengths_are_refused(data, reason):
    framer = Framer("frontend")
    framer.feed(data)
    with pytest.raises(ProtocolError, match=reason):
        framer.next_startup()


def test_startup_limit_is_ten_thousand_bytes_by_default():
    framer = Framer("frontend")
    framer.feed(StartupMessage({"user": "u", "options": "x" * 9900}).encode())
    assert framer.next_startup() is not None


def test_take_buffered_hands_over_the_rest():
    framer = Framer("frontend")
    framer.feed(b"Q\x00\x00")
    assert framer.take_buffered() == b"Q\x00\x00"
    assert framer.buffered == 0


def test_a_message_over_the_limit_is_refused_from_its_header_with_54000():
    """Only the header has arrived: the framer refuses at once, with SQLSTATE 54000, buffering nothing."""
    framer = Framer("frontend", max_size=1 << 20)
    with pytest.raises(MessageTooLarge) as caught:
        framer.split(b"Q" + (1 << 30).to_bytes(4, "big"))
    assert caught.value.sqlstate == "54000"


def test_long_copy_data_streams_in_pieces_whatever_the_limit():
    """CopyData over the limit passes in pieces as it arrives; the message after it is framed as usual."""
    framer = Framer("frontend", max_size=1 << 16, stream_types=b"d", stream_over=1024)
    body = bytes(range(256)) * 1000
    message = b"d" + (4 + len(body)).to_bytes(4, "big") + body
    sync = Sync().encode()
    stream = message + sync
    pieces, kinds = [], []
    for start in range(0, len(stream), 7000):
        batch = framer.split(stream[start : start + 7000])
        pieces.append(batch.data)
        kinds += [kind for kind, _, _ in batch.index]
        assert framer.buffered <= len(stream)
    assert b"".join(pieces) == stream
    assert set(kinds) == {ord("d"), ord("S")}
    assert kinds[-1] == ord("S")
    assert framer.buffered == 0


def test_the_buffer_is_given_back_after_a_large_message():
    """A large message arrives in chunks; once it is returned, the framer holds no buffer at its peak size."""
    framer = Framer("frontend")
    message = Query("select '" + "x" * (8 << 20) + "'").encode()
    for start in range(0, len(message), 65536):
        framer.split(message[start : start + 65536])
    assert framer.buffered == 0
    assert framer._buf.__alloc__() < 1 << 20  # the memory itself is what is tested
