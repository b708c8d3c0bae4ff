"""Authentication responses (``p``), whose meaning depends on the request, and secrets kept out of repr."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.auth import PasswordMessage, SASLInitialResponse, SASLResponse, decode_authentication

FIXTURES = [
    (PasswordMessage("tok"), b"p\x00\x00\x00\x08tok\x00"),
    (
        SASLInitialResponse("SCRAM-SHA-256", b"n,,n=,r=x"),
        b"p\x00\x00\x00\x1fSCRAM-SHA-256\x00\x00\x00\x00\x09n,,n=,r=x",
    ),
    (SASLInitialResponse("X", None), b"p\x00\x00\x00\x0aX\x00\xff\xff\xff\xff"),
    (SASLResponse(b"c=biws"), b"p\x00\x00\x00\x0ac=biws"),
]


@pytest.mark.parametrize(("message", "wire"), FIXTURES, ids=lambda v: type(v).__name__)
def test_round_trip_against_fixture(message, wire):
    assert message.encode() == wire
    assert type(message).decode(wire[5:]) == message


def test_password_and_sasl_data_stay_out_of_repr():
    """A token or SCRAM proof never shows in a log line."""
    assert "hunter2" not in repr(PasswordMessage("hunter2"))
    assert "proof" not in repr(SASLInitialResponse("SCRAM-SHA-256", b"proof"))
    assert "proof" not in repr(SASLResponse(b"proof"))


def test_password_needs_its_terminator():
    with pytest.raises(ProtocolError, match="NUL"):
        PasswordMessage.decode(b"tok")


def test_sasl_mechanism_list_needs_its_terminator():
    with pytest.raises(ProtocolError):
        decode_authentication(b"\x00\x00\x00\x0aSCRAM-SHA-256\x00")
