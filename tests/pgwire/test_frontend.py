"""Frontend messages: each one against hand-written bytes, both ways, and malformed bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.frontend import (
    Bind,
    Close,
    CopyData,
    CopyDone,
    CopyFail,
    Describe,
    Execute,
    Flush,
    FunctionCall,
    Parse,
    Query,
    Sync,
    Terminate,
    decode_frontend,
)

FIXTURES = [
    (Query("SELECT 1"), b"Q\x00\x00\x00\x0dSELECT 1\x00"),
    (Query(""), b"Q\x00\x00\x00\x05\x00"),
    (
        Parse("s1", "SELECT $1", (23,)),
        b"P\x00\x00\x00\x17s1\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17",
    ),
    (Parse("", "SELECT 1"), b"P\x00\x00\x00\x10\x00SELECT 1\x00\x00\x00"),
    (
        Bind("p", "s1", (0, 1), (b"42", None), (1,)),
        b"B\x00\x00\x00\x1fp\x00s1\x00\x00\x02\x00\x00\x00\x01\x00\x02\x00\x00\x00\x0242\xff\xff\xff\xff\x00\x01\x00\x01",
    ),
    (Bind("", ""), b"B\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00"),
    (Describe("S", "s1"), b"D\x00\x00\x00\x08Ss1\x00"),
    (Describe("P", ""), b"D\x00\x00\x00\x06P\x00"),
    (Close("S", "s1"), b"C\x00\x00\x00\x08Ss1\x00"),
    (Execute("", 0), b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"),
    (Execute("p", 100), b"E\x00\x00\x00\x0ap\x00\x00\x00\x00\x64"),
    (Sync(), b"S\x00\x00\x00\x04"),
    (Flush(), b"H\x00\x00\x00\x04"),
    (Terminate(), b"X\x00\x00\x00\x04"),
    (CopyData(b"1\tone\n"), b"d\x00\x00\x00\x0a1\tone\n"),
    (CopyDone(), b"c\x00\x00\x00\x04"),
    (CopyFail("stop"), b"f\x00\x00\x00\x09stop\x00"),
    (
        FunctionCall(1598, (0,), (b"x", None), 1),
        b"F\x00\x00\x00\x19\x00\x00\x06\x3e\x00\x01\x00\x00\x00\x02\x00\x00\x00\x01x\xff\xff\xff\xff\x00\x01",
    ),
]

STRUCTURED = [(message, wire) for message, wire in FIXTURES if not isinstance(message, CopyData)]
"""Fixtures whose body has a structure to break (CopyData is raw bytes of any length)."""


@pytest.mark.parametrize(("message", "wire"), FIXTURES, ids=lambda v: type(v).__name__)
def test_encode_matches_fixture(message, wire):
    assert message.encode() == wire


@pytest.mark.parametrize(("message", "wire"), FIXTURES, ids=lambda v: type(v).__name__)
def test_decode_matches_fixture(message, wire):
    assert decode_frontend(wire[0], wire[5:]) == message


@pytest.mark.parametrize(("message", "wire"), STRUCTURED, ids=lambda v: type(v).__name__)
def test_every_truncation_is_a_protocol_error(message, wire):
    """Cutting any fixture body short is rejected, never misread."""
    body = wire[5:]
    for cut in range(len(body)):
        with pytest.raises(ProtocolError):
            decode_frontend(wire[0], body[:cut])


@pytest.mark.parametrize(("message", "wire"), STRUCTURED, ids=lambda v: type(v).__name__)
def test_trailing_bytes_are_a_protocol_error(message, wire):
    with pytest.raises(ProtocolError):
        decode_frontend(wire[0], wire[5:] + b"\x00")


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        (b"Q", b"SELECT 1", "NUL terminator"),
        (b"Q", b"\xff\xfe\x00", "UTF-8"),
        (b"D", b"Xs1\x00", "'S' or 'P'"),
        (b"B", b"\x00\x00\x00\x01\x00\x02\x00\x00", "format codes"),
        (b"B", b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00", "2 parameter formats"),
        (b"B", b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00", "negative length"),
        (b"P", b"\x00x\x00\xff\xff", "negative count"),
        (b"p", b"secret\x00", "without context"),
    ],
)
def test_malformed_bodies_are_explained(kind, body, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_frontend(kind[0], body)


def test_bind_param_format_applies_one_code_to_all():
    """One format code applies to every parameter; none means text."""
    assert Bind("", "", (1,), (b"a", b"b")).param_format(1) == 1
    assert Bind("", "", (), (b"a",)).param_format(0) == 0
    assert Bind("", "", (0, 1), (b"a", b"b")).param_format(1) == 1


def test_strings_with_nul_cannot_be_encoded():
    with pytest.raises(ValueError, match="NUL"):
        Query("SELECT 1\x00; DROP TABLE x").encode()


_names = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8)  # UTF-8 strings
_binds = st.builds(
    Bind,
    portal=_names,
    statement=_names,
    param_formats=st.lists(st.sampled_from([0, 1]), max_size=1).map(tuple),
    params=st.lists(st.none() | st.binary(max_size=16), max_size=5).map(tuple),
    result_formats=st.lists(st.sampled_from([0, 1]), max_size=3).map(tuple),
)


@given(_binds)
def test_bind_round_trips_through_the_single_pass_decoder(message):
    assert Bind.decode(memoryview(message.encode())[5:]) == message


@given(st.binary(max_size=40))
def test_bind_decoders_agree_on_any_bytes(body):
    """The single pass and the checked reader accept the same bodies, with the same result."""
    try:
        expected = Bind._decode_checked(body)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            Bind.decode(body)
        return
    assert Bind.decode(body) == expected


@given(_names, st.integers(-(2**31), 2**31 - 1))
def test_execute_round_trips(portal, max_rows):
    message = Execute(portal, max_rows)
    assert Execute.decode(memoryview(message.encode())[5:]) == message
