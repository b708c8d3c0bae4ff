"""Backend messages: each one against hand-written bytes, both ways, and malformed bodies."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.auth import (
    AuthenticationCleartextPassword,
    AuthenticationGSS,
    AuthenticationGSSContinue,
    AuthenticationKerberosV5,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    AuthenticationSSPI,
)
from sqlgate.pgwire.backend import (
    BackendKeyData,
    BindComplete,
    CloseComplete,
    CommandComplete,
    CopyBothResponse,
    CopyInResponse,
    CopyOutResponse,
    DataRow,
    EmptyQueryResponse,
    FieldDescription,
    FunctionCallResponse,
    NegotiateProtocolVersion,
    NoData,
    NotificationResponse,
    ParameterDescription,
    ParameterStatus,
    ParseComplete,
    PortalSuspended,
    ReadyForQuery,
    RowDescription,
    data_row_values,
    decode_backend,
)
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import CopyData, CopyDone
from sqlgate.pgwire.notices import ErrorResponse, NoticeResponse

FIXTURES = [
    (AuthenticationOk(), b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
    (AuthenticationKerberosV5(), b"R\x00\x00\x00\x08\x00\x00\x00\x02"),
    (AuthenticationCleartextPassword(), b"R\x00\x00\x00\x08\x00\x00\x00\x03"),
    (AuthenticationMD5Password(b"\x01\x02\x03\x04"), b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"),
    (AuthenticationGSS(), b"R\x00\x00\x00\x08\x00\x00\x00\x07"),
    (AuthenticationGSSContinue(b"tok"), b"R\x00\x00\x00\x0b\x00\x00\x00\x08tok"),
    (AuthenticationSSPI(), b"R\x00\x00\x00\x08\x00\x00\x00\x09"),
    (
        AuthenticationSASL(("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
        b"R\x00\x00\x00\x2a\x00\x00\x00\x0aSCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00",
    ),
    (AuthenticationSASLContinue(b"r=abc"), b"R\x00\x00\x00\x0d\x00\x00\x00\x0br=abc"),
    (AuthenticationSASLFinal(b"v=xyz"), b"R\x00\x00\x00\x0d\x00\x00\x00\x0cv=xyz"),
    (ParameterStatus("TimeZone", "UTC"), b"S\x00\x00\x00\x11TimeZone\x00UTC\x00"),
    (BackendKeyData(1234, b"\x00\x00\x30\x39"), b"K\x00\x00\x00\x0c\x00\x00\x04\xd2\x00\x00\x30\x39"),
    (BackendKeyData(7, bytes(range(32))), b"K\x00\x00\x00\x28\x00\x00\x00\x07" + bytes(range(32))),
    (ReadyForQuery("I"), b"Z\x00\x00\x00\x05I"),
    (ReadyForQuery("E"), b"Z\x00\x00\x00\x05E"),
    (
        RowDescription((FieldDescription("id", 16384, 1, 23, 4, -1, 0),)),
        b"T\x00\x00\x00\x1b\x00\x01id\x00\x00\x00\x40\x00\x00\x01\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00",
    ),
    (RowDescription(()), b"T\x00\x00\x00\x06\x00\x00"),
    (DataRow((b"1", None, b"")), b"D\x00\x00\x00\x13\x00\x03\x00\x00\x00\x011\xff\xff\xff\xff\x00\x00\x00\x00"),
    (DataRow(()), b"D\x00\x00\x00\x06\x00\x00"),
    (CommandComplete("SELECT 1"), b"C\x00\x00\x00\x0dSELECT 1\x00"),
    (EmptyQueryResponse(), b"I\x00\x00\x00\x04"),
    (
        ErrorResponse({"S": "FATAL", "C": "28P01", "M": "no"}),
        b"E\x00\x00\x00\x17SFATAL\x00C28P01\x00Mno\x00\x00",
    ),
    (NoticeResponse({"S": "NOTICE", "M": "hi"}), b"N\x00\x00\x00\x11SNOTICE\x00Mhi\x00\x00"),
    (NotificationResponse(42, "ch", "p"), b"A\x00\x00\x00\x0d\x00\x00\x00\x2ach\x00p\x00"),
    (ParameterDescription((23, 25)), b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19"),
    (NoData(), b"n\x00\x00\x00\x04"),
    (ParseComplete(), b"1\x00\x00\x00\x04"),
    (BindComplete(), b"2\x00\x00\x00\x04"),
    (CloseComplete(), b"3\x00\x00\x00\x04"),
    (PortalSuspended(), b"s\x00\x00\x00\x04"),
    (CopyInResponse(0, (0, 0)), b"G\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00"),
    (CopyOutResponse(1, (1,)), b"H\x00\x00\x00\x09\x01\x00\x01\x00\x01"),
    (CopyBothResponse(0, ()), b"W\x00\x00\x00\x07\x00\x00\x00"),
    (CopyData(b"row\n"), b"d\x00\x00\x00\x08row\n"),
    (CopyDone(), b"c\x00\x00\x00\x04"),
    (NegotiateProtocolVersion(0, ("_pq_.x",)), b"v\x00\x00\x00\x13\x00\x00\x00\x00\x00\x00\x00\x01_pq_.x\x00"),
    (FunctionCallResponse(b"ok"), b"V\x00\x00\x00\x0a\x00\x00\x00\x02ok"),
    (FunctionCallResponse(None), b"V\x00\x00\x00\x08\xff\xff\xff\xff"),
]
RAW_BODIES = (CopyData, BackendKeyData, AuthenticationGSSContinue, AuthenticationSASLContinue, AuthenticationSASLFinal)
STRUCTURED = [(m, w) for m, w in FIXTURES if not isinstance(m, RAW_BODIES)]
"""Fixtures whose body has a structure to break (the others end in bytes of variable length)."""


@pytest.mark.parametrize(("message", "wire"), FIXTURES, ids=lambda v: type(v).__name__)
def test_encode_matches_fixture(message, wire):
    assert message.encode() == wire


@pytest.mark.parametrize(("message", "wire"), FIXTURES, ids=lambda v: type(v).__name__)
def test_decode_matches_fixture(message, wire):
    assert decode_backend(wire[0], memoryview(wire)[5:]) == message


@pytest.mark.parametrize(("message", "wire"), STRUCTURED, ids=lambda v: type(v).__name__)
def test_every_truncation_is_a_protocol_error(message, wire):
    """Cutting any fixture body short is rejected, never misread."""
    body = wire[5:]
    for cut in range(len(body)):
        with pytest.raises(ProtocolError):
            decode_backend(wire[0], body[:cut])


@pytest.mark.parametrize(("message", "wire"), STRUCTURED, ids=lambda v: type(v).__name__)
def test_trailing_bytes_are_a_protocol_error(message, wire):
    with pytest.raises(ProtocolError):
        decode_backend(wire[0], wire[5:] + b"\x00")


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        (b"R", b"\x00\x00\x00\x63", "authentication request code 99"),
        (b"Z", b"X", "status"),
        (b"K", b"\x00\x00\x00\x01\x00\x01", "cancel key of 2 bytes"),
        (b"K", b"\x00\x00\x00\x01" + bytes(257), "cancel key of 257 bytes"),
        (b"D", b"\xff\xff", "negative count"),
        (b"D", b"\x00\x01\xff\xff\xff\xfe", "negative length"),
        (b"D", b"\x00\x01\x00\x00\x00\x05abc", "truncated"),
        (b"G", b"\x02\x00\x00", "format must be 0 or 1"),
        (b"v", b"\xff\xff\xff\xff\x00\x00\x00\x00", "negative"),
        (b"x", b"", "unknown backend message type"),
    ],
)
def test_malformed_bodies_are_explained(kind, body, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_backend(kind[0], body)


@pytest.mark.parametrize(
    ("tag", "rows"),
    [("SELECT 3", 3), ("INSERT 0 12", 12), ("UPDATE 0", 0), ("COPY 100", 100), ("CREATE TABLE", None), ("BEGIN", None)],
)
def test_command_complete_row_count(tag, rows):
    assert CommandComplete(tag).rows == rows


def test_secrets_stay_out_of_repr():
    """Cancel keys never show in logs."""
    assert "secret" not in repr(BackendKeyData(1, b"secret-key"))


def test_data_row_values_without_a_message_object():
    """The masking path reads values straight from a batch payload."""
    batch = Framer("backend").split(DataRow((b"a", None, b"")).encode())
    assert data_row_values(batch.payload(0)) == (b"a", None, b"")
