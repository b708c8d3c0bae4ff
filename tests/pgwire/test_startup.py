"""Startup-phase messages: StartupMessage (3.0 and 3.2), SSLRequest, GSSENCRequest, CancelRequest."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.startup import (
    PROTOCOL_3_0,
    PROTOCOL_3_2,
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
    decode_startup,
    protocol_version,
    version_text,
)

FIXTURES = [
    (
        StartupMessage({"user": "alice", "database": "prod"}),
        b"\x00\x00\x00\x22\x00\x03\x00\x00user\x00alice\x00database\x00prod\x00\x00",
    ),
    (StartupMessage({"user": "a"}, PROTOCOL_3_2), b"\x00\x00\x00\x10\x00\x03\x00\x02user\x00a\x00\x00"),
    (SSLRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    (GSSENCRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x30"),
    (CancelRequest(99, b"\x01\x02\x03\x04"), b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x63\x01\x02\x03\x04"),
    (CancelRequest(5, b"k" * 32), b"\x00\x00\x00\x2c\x04\xd2\x16\x2e\x00\x00\x00\x05" + b"k" * 32),
]


@pytest.mark.parametrize(("message", "wire"), FIXTURES, ids=lambda v: type(v).__name__)
def test_encode_matches_fixture(message, wire):
    assert message.encode() == wire


@pytest.mark.parametrize(("message", "wire"), FIXTURES, ids=lambda v: type(v).__name__)
def test_decode_matches_fixture(message, wire):
    assert decode_startup(wire[4:]) == message


def test_startup_parameters_and_defaults():
    """The database defaults to the user name; options, application_name and _pq_ options are exposed."""
    message = StartupMessage(
        {"user": "bob", "application_name": "psql", "options": "-c search_path=x", "_pq_.opt": "1"}
    )
    assert (message.user, message.database, message.application_name) == ("bob", "bob", "psql")
    assert message.options == "-c search_path=x"
    assert message.protocol_options == {"_pq_.opt": "1"}
    assert StartupMessage({}).user is None


def test_protocol_version_codes():
    assert protocol_version(3, 2) == PROTOCOL_3_2
    assert version_text(PROTOCOL_3_0) == "3.0"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x00\x03\x00\x00user\x00a\x00", "NUL terminator"),
        (b"\x00\x03\x00\x00user\x00a\x00user\x00b\x00\x00", "given twice"),
        (b"\x00\x03\x00\x00user\x00a\x00\x00x", "trailing"),
        (b"\x04\xd2\x16\x2fx", "trailing"),
        (b"\x04\xd2\x16\x2e\x00\x00\x00\x01\x00\x00", "cancel key of 2 bytes"),
        (b"\x04\xd2\x16\x2e\x00\x00\x00\x01" + bytes(300), "cancel key of 300 bytes"),
        (b"\x00\x03", "truncated"),
    ],
)
def test_malformed_startup_messages_are_explained(body, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_startup(body)
