"""ErrorResponse and NoticeResponse: every field, the builder, and errors from sqlgate exceptions."""

from __future__ import annotations

import pytest

from sqlgate.errors import LeaseEnded, TokenRejected
from sqlgate.pgwire.backend import decode_backend
from sqlgate.pgwire.notices import ErrorResponse, error_from, error_response, notice_response

ALL_FIELDS = dict.fromkeys("SVCMDHPpqWstcdnFLR", "v")


def test_every_field_round_trips_in_order():
    """All documented fields, and an unknown code, survive decode(encode())."""
    fields = {**ALL_FIELDS, "C": "42501", "Z": "unknown code kept"}
    message = ErrorResponse(fields)
    decoded = decode_backend(ord("E"), message.encode()[5:])
    assert decoded == message
    assert list(decoded.fields) == list(fields)
    assert decoded.named()["constraint_name"] == "v"
    assert decoded.named()["field_Z"] == "unknown code kept"


def test_builder_writes_what_postgres_writes():
    error = error_response("42501", "denied", severity="FATAL", detail="rule r1", hint="ask an admin")
    assert error.encode() == (
        b"E\x00\x00\x00\x39SFATAL\x00VFATAL\x00C42501\x00Mdenied\x00Drule r1\x00Hask an admin\x00\x00"
    )
    assert (error.severity, error.sqlstate, error.message, error.detail, error.hint) == (
        "FATAL",
        "42501",
        "denied",
        "rule r1",
        "ask an admin",
    )
    assert str(error) == "FATAL: denied (SQLSTATE 42501)"


def test_error_from_sqlgate_exception_keeps_its_sqlstate():
    assert error_from(TokenRejected("token expired", hint="run sqlgate login")).fields == {
        "S": "ERROR",
        "V": "ERROR",
        "C": "28P01",
        "M": "token expired",
        "H": "run sqlgate login",
    }
    assert error_from(LeaseEnded("lease ended"), severity="FATAL").sqlstate == "57P01"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"sqlstate": "2800", "message": "x"}, "SQLSTATE"),
        ({"sqlstate": "28p01", "message": "x"}, "SQLSTATE"),
        ({"sqlstate": "28000", "message": "x", "severity": "NOTICE"}, "severity"),
    ],
)
def test_builder_refuses_bad_input(kwargs, reason):
    with pytest.raises(ValueError, match=reason):
        error_response(**kwargs)


def test_notice_builder():
    notice = notice_response("session ends in 5 minutes", severity="WARNING")
    assert decode_backend(ord("N"), notice.encode()[5:]) == notice
    assert notice.sqlstate == "00000"
